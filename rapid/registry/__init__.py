"""The function registry: versions, aliases and layers as immutable Structs, a store
interface (SQLite in the data dir by default) and a content-addressed code store."""
