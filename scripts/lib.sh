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

# The real lib-jitsi-meet client for tests/real_client.rs: Debian's chromium, and from the npm
# registry (with `npm pack`, never `npm install`: the bundle's dependencies name git URLs) the only
# prebuilt browser bundle there, @lyno/lib-jitsi-meet 2.6726.2 (a December 2021 build), with the
# jquery 3.6.0 it expects. Extracts lib-jitsi-meet.min.js and jquery.min.js into
# $TEST_REAL_CLIENT_DIR (default target/real-client/, outside git), where the tests look for them;
# nothing third-party is committed. Dies, saying why, when the registry or a package cannot be had:
# the real-client tests never skip.
REAL_CLIENT_BUNDLE="@lyno/lib-jitsi-meet@2.6726.2"
REAL_CLIENT_JQUERY="jquery@3.6.0"
ensure_real_client() {
	ensure_packages chromium
	command -v npm >/dev/null || ensure_packages npm
	local dir="${TEST_REAL_CLIENT_DIR:-$PODIUM_ROOT/target/real-client}"
	export TEST_REAL_CLIENT_DIR="$dir"
	[ -s "$dir/lib-jitsi-meet.min.js" ] && [ -s "$dir/jquery.min.js" ] && return 0
	say "fetching $REAL_CLIENT_BUNDLE and $REAL_CLIENT_JQUERY (npm pack) into $dir"
	mkdir -p "$dir/packs"
	local tarballs
	# npm pack prints the tarballs' names, one a line, in the order asked.
	tarballs="$(cd "$dir/packs" && npm pack --silent "$REAL_CLIENT_BUNDLE" "$REAL_CLIENT_JQUERY")" \
		|| die "npm pack $REAL_CLIENT_BUNDLE $REAL_CLIENT_JQUERY failed: the real-client tests need the npm registry"
	local bundle jquery
	bundle="$dir/packs/$(sed -n 1p <<<"$tarballs")"
	jquery="$dir/packs/$(sed -n 2p <<<"$tarballs")"
	tar -xzf "$bundle" -O package/lib-jitsi-meet.min.js >"$dir/lib-jitsi-meet.min.js.part" \
		|| die "$bundle has no package/lib-jitsi-meet.min.js"
	tar -xzf "$jquery" -O package/dist/jquery.min.js >"$dir/jquery.min.js.part" \
		|| die "$jquery has no package/dist/jquery.min.js"
	mv "$dir/lib-jitsi-meet.min.js.part" "$dir/lib-jitsi-meet.min.js"
	mv "$dir/jquery.min.js.part" "$dir/jquery.min.js"
}

# jicofo's own Jingle parser for tests/jingle_differential.rs: Java 17 and Maven (Debian's packages when
# missing), then tests/jicofo-parser built once online, so that Maven's local repository holds
# jitsi-xmpp-extensions and Smack 4.4.8 from Maven Central and the test can build it offline. Dies,
# saying why, when Maven Central cannot be reached: the differential test never skips.
ensure_java_parser() {
	if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
		ensure_packages openjdk-17-jdk-headless || ensure_packages default-jdk-headless
	fi
	command -v mvn >/dev/null || ensure_packages maven
	say "building tests/jicofo-parser (jitsi-xmpp-extensions from Maven Central)"
	mvn -q -B -Dstyle.color=never -f "$PODIUM_ROOT/tests/jicofo-parser/pom.xml" compile \
		|| die "mvn could not build tests/jicofo-parser: the Jingle differential test needs Maven Central"
}
