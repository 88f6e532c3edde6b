"""The operating system: folders and files, the keyring, start at login, the instance's files."""
