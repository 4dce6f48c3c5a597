module UnusedGem; def self.hello = 'hi'; end
