// hello-world.js: System.caller.id is who made the call (`?user=NAME` in debug mode; "" when anonymous).
exports.helloWorld = () => {
  if (System.caller.id) return 'Hello, ' + System.caller.id + '!'
  return 'Hello, world!'
}

exports.whoami = () => System.caller.id
