# cloudd: `make serve` runs the cloud, `make test` runs every test.
# Both set up what they need on a fresh Debian/Ubuntu machine and are idempotent.

PYTHON ?= python3
VENV   := .venv
TEMPEST_VENV := .tempest-venv
BIN    := $(VENV)/bin
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: serve test bench lint system-deps test-system-deps image-system-deps virt-system-deps \
        console-system-deps metadata-system-deps network-system-deps serve-novnc \
        serve-virt venv test-venv clean

# --- system packages (Debian's) ---------------------------------------------
# python3-venv for the virtualenv; PostgreSQL's server binaries for the tests,
# which start their own throwaway cluster with initdb/pg_ctl.
system-deps:
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "installing python3-venv"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv; }

test-system-deps: system-deps image-system-deps virt-system-deps console-system-deps \
                  metadata-system-deps network-system-deps
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then \
	  echo "installing PostgreSQL (Debian's postgresql package) for the tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql; \
	fi

# qemu-img (Debian's qemu-utils): the image service checks every upload's format with it.
image-system-deps:
	@if ! command -v qemu-img >/dev/null; then \
	  echo "installing qemu-img (Debian's qemu-utils) for image format inspection"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq qemu-utils; \
	fi

# libvirt and QEMU for real guests (and libvirt's headers for libvirt-python);
# cpio builds the tests' tiny guest, mkfs/mkswap format ephemeral and swap disks.
VIRT_PACKAGES := libvirt-daemon-system qemu-system-x86 qemu-utils libvirt-dev pkg-config \
                 cpio e2fsprogs dosfstools ntfs-3g
virt-system-deps:
	@if ! command -v libvirtd >/dev/null || ! command -v qemu-system-x86_64 >/dev/null \
	    || ! pkg-config --exists libvirt || ! command -v cpio >/dev/null \
	    || ! command -v mkfs.vfat >/dev/null || ! command -v mkfs.ntfs >/dev/null; then \
	  echo "installing libvirt and QEMU (Debian's $(VIRT_PACKAGES))"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq $(VIRT_PACKAGES); \
	fi

# noVNC's page for remote consoles (served from /usr/share/novnc) and headless
# Chromium, which the console test drives to screenshot a guest's screen.
CONSOLE_PACKAGES := novnc chromium-headless-shell
console-system-deps:
	@if [ ! -f /usr/share/novnc/vnc_lite.html ] || ! command -v chromium-headless-shell >/dev/null; then \
	  echo "installing noVNC and headless Chromium (Debian's $(CONSOLE_PACKAGES))"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends $(CONSOLE_PACKAGES); \
	fi

# The metadata tests: isoinfo (genisoimage) reads config drives back as a second,
# independent ISO 9660 reader; the metadata proxy's tests plug a namespaced
# "guest" into a bridge (iproute2) and DNAT 169.254.169.254 to it (nftables).
METADATA_PACKAGES := genisoimage iproute2 nftables
metadata-system-deps:
	@if ! command -v isoinfo >/dev/null || ! command -v ip >/dev/null || ! command -v nft >/dev/null; then \
	  echo "installing Debian's $(METADATA_PACKAGES) for the metadata tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends $(METADATA_PACKAGES); \
	fi

# The libvirt agent's host plumbing (cloudd/agent/network): bridges and VLAN
# interfaces (iproute2), DHCP (dnsmasq-base), NAT and security groups
# (nftables), sysctl (procps); its root test pings a namespaced "guest" (ping).
NETWORK_PACKAGES := dnsmasq-base nftables iproute2 procps iputils-ping
network-system-deps:
	@if ! command -v dnsmasq >/dev/null || ! command -v nft >/dev/null || ! command -v ip >/dev/null \
	    || ! command -v sysctl >/dev/null || ! command -v ping >/dev/null; then \
	  echo "installing Debian's $(NETWORK_PACKAGES) for host networking"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    $(SUDO) apt-get install -y -qq --no-install-recommends $(NETWORK_PACKAGES); \
	fi

# `make serve`: libvirt when it can be had. As root the packages are installed;
# otherwise the one command to run is printed and serve uses the fake driver.
serve-virt:
	@if command -v libvirtd >/dev/null && command -v qemu-system-x86_64 >/dev/null; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
	  $(MAKE) --no-print-directory virt-system-deps network-system-deps; \
	else \
	  echo "cloudd: for real VMs install libvirt and QEMU first:"; \
	  echo "  sudo apt-get install -y $(VIRT_PACKAGES)"; \
	fi

# `make serve`: noVNC for `openstack console url show` (as root it is installed;
# otherwise the command is printed and consoles answer 404 for the page).
serve-novnc:
	@if [ -f /usr/share/novnc/vnc_lite.html ]; then \
	  exit 0; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends novnc; \
	else \
	  echo "cloudd: for the noVNC console page install noVNC: sudo apt-get install -y novnc"; \
	fi

# --- the virtualenv -----------------------------------------------------------
# Byte-compiled up front: start-up stays fast even where PYTHONDONTWRITEBYTECODE is set.
$(VENV)/.base: pyproject.toml | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib cloudd >/dev/null
	touch $@

$(VENV)/.test: $(VENV)/.base | virt-system-deps
	$(BIN)/pip install -q -e '.[test,libvirt]'
	$(BIN)/python -m compileall -q -j0 $(VENV)/lib >/dev/null
	touch $@

# Tempest in a venv of its own (its oslo libraries stay out of cloudd's).
TEMPEST_VERSION := 47.0.0
$(TEMPEST_VENV)/.done: | system-deps
	$(PYTHON) -m venv $(TEMPEST_VENV)
	$(TEMPEST_VENV)/bin/pip install -q --upgrade pip
	$(TEMPEST_VENV)/bin/pip install -q tempest==$(TEMPEST_VERSION)
	$(TEMPEST_VENV)/bin/python -m compileall -q -j0 $(TEMPEST_VENV)/lib >/dev/null
	touch $@

venv: $(VENV)/.base
test-venv: $(VENV)/.test $(TEMPEST_VENV)/.done

# --- the two commands -----------------------------------------------------------
serve: venv image-system-deps serve-virt serve-novnc
	@if command -v libvirtd >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  pgrep -x libvirtd >/dev/null || libvirtd -d; pgrep -x virtlogd >/dev/null || virtlogd -d; \
	  $(BIN)/pip install -q -e '.[libvirt]' && exec $(BIN)/cloudd serve --local-agent libvirt; \
	else \
	  echo "cloudd: WARNING: libvirt is not available; the local agent uses the fake driver" \
	       "(instances are kept in memory, no real VMs)"; \
	  exec $(BIN)/cloudd serve --local-agent fake; \
	fi

# Two workers (CI has two cores); each test module stays on one worker, so its
# module-scoped clouds are shared by its tests.
test: test-venv test-system-deps
	$(BIN)/pytest -q -n 2 --dist loadscope

bench: test-venv
	$(BIN)/python bench/run.py
	$(BIN)/python bench/placement.py

lint: test-venv
	$(BIN)/pip install -q ruff==0.17.6
	$(BIN)/ruff check cloudd tests bench

clean:
	rm -rf $(VENV) $(TEMPEST_VENV)
