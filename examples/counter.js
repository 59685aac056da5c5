// counter.js: state in memory. It resets when the VM restarts (the log records the restart, so replays agree).
let i = 0

exports.inc = () => ++i
exports.get = () => i
