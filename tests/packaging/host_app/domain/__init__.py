"""The host application's own domain package: a top-level `domain`, like the kit's source folder."""
