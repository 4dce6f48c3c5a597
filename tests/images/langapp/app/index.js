// Requires used-pkg and never @scope/unused-pkg: the in-use map must tell them apart.
const used = require('used-pkg');
console.log('node up ' + used('x'));
setInterval(() => {}, 1 << 30);
