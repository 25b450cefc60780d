"""The host application's own configuration package: a top-level `config`, like the kit's source folder."""

APP_NAME = "host-app"
