# tests/vm/ - the proof on a stock Debian 12 system: a guest with systemd and cgroup v2 under
# QEMU (tests/vm/README.md). The image is built once from Debian's packages and cached.

# host packages that build and boot the guest (not in DEB_PKGS: the guest does not need them)
VM_DEB_PKGS := mmdebstrap qemu-system-x86 qemu-utils e2fsprogs

.PHONY: vm-deps vm-image vm-shell check-vm
vm-deps:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(VM_DEB_PKGS)"

vm-image: vm-deps
	tests/vm/image

# a root shell in a v2 guest with this tree in /srv/nemo (VM_ARGS=--v1 for the v1 control)
vm-shell: all vm-image
	tests/vm/run --shell $(VM_ARGS)

check-vm: all vm-image
	tests/vm/check-vm
