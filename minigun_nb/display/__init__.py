"""Turning snapshots and graphs into something a person sees; never imported by runtime/."""
