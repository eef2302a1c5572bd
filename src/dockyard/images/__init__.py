"""Image content: blobs by digest, Docker/OCI archives, layer unpacking and overlay snapshots.

The controller side keeps blobs (:mod:`content`) and reads and writes archives
(:mod:`archive`); the agent side unpacks each layer once per host (:mod:`layers`) and
stacks idmapped layers with overlayfs for each container (:mod:`snapshot`).
"""
