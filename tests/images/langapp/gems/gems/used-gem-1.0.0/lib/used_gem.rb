module UsedGem; def self.hello = 'hi'; end
