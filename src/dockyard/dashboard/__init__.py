"""The web dashboard (a later issue)."""
