"""The OCI runtime side: config.json, seccomp, conmon + crun, cgroups and container logs."""
