"""Who the caller is: bearer-token verification, the JWKS key source, the demo sign-in identities."""
