'use strict'
// Names of the prebuilt platform packages, the napi-rs way: `libvms-<platform>-<arch>[-<abi>]`, each listed as an
// optional dependency of libvms, so npm installs only the one whose `os`/`cpu`/`libc` match the machine.
const pkg = require('../package.json')

const PREFIX = 'libvms-'

/** This machine's target, e.g. 'linux-x64-gnu', 'darwin-arm64', 'win32-x64-msvc'. */
function platformTarget (platform = process.platform, arch = process.arch) {
  if (platform === 'linux') return `linux-${arch}-${isMusl() ? 'musl' : 'gnu'}`
  if (platform === 'win32') return `win32-${arch}-msvc`
  return `${platform}-${arch}`
}

function isMusl () {
  // glibc reports its version; musl does not.
  try {
    return !process.report.getReport().header.glibcVersionRuntime
  } catch (_) {
    return false
  }
}

function platformPackage (target) {
  return PREFIX + target
}

/** The targets with a prebuilt package, from package.json's optionalDependencies. */
function supportedTargets () {
  return Object.keys(pkg.optionalDependencies || {}).filter((n) => n.startsWith(PREFIX)).map((n) => n.slice(PREFIX.length))
}

/** The one line every entry point prints when there is neither a prebuilt addon nor a local build. */
function noBinaryMessage (target = platformTarget()) {
  const supported = supportedTargets()
  const prebuilt = supported.includes(target)
    ? `neither the prebuilt ${platformPackage(target)} (an optional dependency) nor a local build is installed`
    : `no prebuilt addon for ${target} (prebuilt: ${supported.join(', ') || 'none'}) and no local build`
  return `libvms: ${prebuilt}; build it from source with a Rust toolchain (https://rustup.rs): ` +
    '`npm rebuild libvms` (where npm blocks install scripts, first `npm install-scripts approve libvms`)'
}

module.exports = { platformTarget, platformPackage, supportedTargets, noBinaryMessage, PREFIX }
