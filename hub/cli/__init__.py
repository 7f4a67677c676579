"""The `knooppunt` command."""
