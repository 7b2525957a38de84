# tests/vm/ - the proof on a stock Debian 12 system: a guest with systemd and cgroup v2 under
# QEMU (tests/vm/README.md). The image is built once from Debian's packages and cached.

# host packages that build and boot the guest (not in DEB_PKGS: the guest does not need them)
VM_DEB_PKGS := mmdebstrap qemu-system-x86 qemu-utils e2fsprogs

.PHONY: vm-deps vm-image vm-shell check-vm
vm-deps:
	@missing=$$(for p in $(VM_DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q ' installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "vm-deps: installing" $$missing; \
		if [ "$$(id -u)" != 0 ]; then echo "vm-deps: run as root" >&2; exit 1; fi; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

vm-image: vm-deps
	tests/vm/image

# a root shell in a v2 guest with this tree in /srv/nemo (VM_ARGS=--v1 for the v1 control)
vm-shell: all vm-image
	tests/vm/run --shell $(VM_ARGS)

check-vm: all vm-image
	tests/vm/check-vm
