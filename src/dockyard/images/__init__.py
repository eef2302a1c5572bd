"""Image content: blobs by digest, Docker/OCI archives, layer unpacking and overlay snapshots.

The controller side keeps blobs (:mod:`content`), reads and writes archives
(:mod:`archive`, with ``docker import --change`` parsing in :mod:`changes`), can seed a
busybox image from the host (:mod:`seed`), builds the curated busybox, alpine and
hello-world stand-ins the registry serves in ``library`` (:mod:`curated`), and pulls and
pushes images from and to a registry (:mod:`registry_client`); the agent side unpacks each
layer once per host (:mod:`layers`, jailed in the :mod:`unpack` child process) and stacks
idmapped layers (:mod:`idmap`) with overlayfs for each container (:mod:`snapshot`).

This file must stay free of imports: ``python -m dockyard.images.unpack`` runs it on every
layer unpack.
"""
