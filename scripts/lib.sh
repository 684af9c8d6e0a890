# Shared by scripts/run and scripts/test. Source it; do not run it.

PODIUM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
		die "need root (or sudo) to run: $*"
	fi
}

# Installs the Debian packages that are missing (apt-get update first, once).
ensure_packages() {
	local missing=()
	for pkg in "$@"; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# cargo from PATH or rustup's default place; podium needs Rust >= 1.94 (sqlx 0.9).
ensure_cargo() {
	if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
		export PATH="$HOME/.cargo/bin:$PATH"
	fi
	command -v cargo >/dev/null || die "cargo not found: install Rust >= 1.94 with rustup (https://rustup.rs)"
}

# Waits until a TCP port on 127.0.0.1 accepts, or the process $2 dies.
wait_port() {
	local port=$1 pid=$2 tries=0
	until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
		kill -0 "$pid" 2>/dev/null || return 1
		tries=$((tries + 1)); [ $tries -gt 400 ] && return 1
		sleep 0.05
	done
}

# A PostgreSQL server the tests can use, and TEST_POSTGRES_URL pointing at it. Uses the URL given, or
# the machine's server with trust auth on 127.0.0.1 (postgres/test); otherwise installs Debian's
# postgresql, starts its cluster, and creates a podium role with a password, reached over TCP.
ensure_postgres() {
	ensure_packages postgresql-client
	local url="${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
	if psql -X -q -A -t "$url" -c 'SELECT 1' >/dev/null 2>&1; then
		export TEST_POSTGRES_URL="$url"
		return 0
	fi
	ensure_packages postgresql
	local cluster
	cluster="$(pg_lsclusters -h 2>/dev/null | awk 'NR == 1 { print $1 " " $2 }')"
	[ -n "$cluster" ] || die "postgresql is installed but has no cluster (pg_lsclusters is empty)"
	# shellcheck disable=SC2086
	pg_lsclusters -h | awk 'NR == 1 { exit ($4 == "online") ? 0 : 1 }' || as_root pg_ctlcluster $cluster start
	for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 && break; sleep 0.2; done
	as_root runuser -u postgres -- psql -X -q -c \
		"DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'podium') THEN CREATE ROLE podium LOGIN CREATEDB PASSWORD 'podium'; END IF; END \$\$;"
	as_root runuser -u postgres -- psql -X -q -tc "SELECT 1 FROM pg_database WHERE datname = 'podium'" | grep -q 1 \
		|| as_root runuser -u postgres -- createdb -O podium podium
	url="postgres://podium:podium@127.0.0.1:5432/podium"
	psql -X -q -A -t "$url" -c 'SELECT 1' >/dev/null || die "PostgreSQL is running but $url does not connect"
	export TEST_POSTGRES_URL="$url"
}
