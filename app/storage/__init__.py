"""Where session state lives: Redis key names, the session store (Lua commits and view reads), batched position reads."""
