"""Names to files: the resolver (tiny, shipped, path, alias, Hub id), the alias files, the Hub cache and the models
folder things are built into once."""
