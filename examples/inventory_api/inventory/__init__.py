"""The example inventory API: a Django service guarded by the library's adapter."""
