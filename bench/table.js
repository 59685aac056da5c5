'use strict'
// Small helpers shared by the benchmarks: timing and a Markdown table printer.

/** Run `fn` and return seconds elapsed. */
async function time (fn) {
  const start = process.hrtime.bigint()
  await fn()
  return Number(process.hrtime.bigint() - start) / 1e9
}

function fmt (n, digits = 0) {
  return Number(n).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

/** Print rows `[name, value, target]` as a Markdown table (pasteable into the README). */
function printTable (title, rows) {
  console.log(`\n### ${title}\n`)
  console.log('| measurement | result | target |')
  console.log('|---|---|---|')
  for (const [name, value, target = ''] of rows) console.log(`| ${name} | ${value} | ${target} |`)
}

module.exports = { time, fmt, printTable }
