# Requires used-gem (installed under /usr/local/lib/ruby/gems/3.1.0) and never unused-gem.
require 'used_gem'
puts "ruby up #{UsedGem.hello}"
$stdout.flush
sleep
