# -*- encoding: utf-8 -*-
Gem::Specification.new do |s|
  s.name = "used-gem".freeze
  s.version = "1.0.0"
  s.summary = "Rampart test gem".freeze
  s.authors = ["Rampart".freeze]
  s.files = ["lib/used_gem.rb".freeze]
  s.require_paths = ["lib".freeze]
  s.licenses = ["MIT".freeze]
end
