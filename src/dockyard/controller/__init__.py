"""The cluster brain: admission, placement, container lifecycle, images, volumes and events."""
