"""The per-host daemon: composes runtime, images, network and volumes behind the agent protocol."""
