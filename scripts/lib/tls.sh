# shellcheck shell=bash
# scripts/lib/tls.sh -- the throwaway certificate authority of this checkout's
# services, made with the openssl CLI: a CA, a server certificate for
# localhost and 127.0.0.1 (RabbitMQ's TLS listener and Postgres' ssl=on), a
# client certificate whose common name is the app user (mutual TLS and
# EXTERNAL login), and the certificates the TLS tests need to be refused: one
# from another CA, one for another host name and one that has expired.
# Sourced by scripts/services after common.sh and services_init.

readonly TLS_DIR="$STATE/tls"

# tls_issue NAME SUBJECT EXT DAYS: a P-256 key and a certificate signed by
# the CA in $TLS_DIR (DAYS may be negative: an expired certificate).
tls_issue() {
  local name=$1 subject=$2 ext=$3 days=$4 ca=${5:-ca}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" \
    -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$TLS_DIR/$name.ext"
  openssl x509 -req -in "$TLS_DIR/$name.csr" -CA "$TLS_DIR/$ca.pem" -CAkey "$TLS_DIR/$ca.key" -CAcreateserial \
    -days "$days" -extfile "$TLS_DIR/$name.ext" -out "$TLS_DIR/$name.pem" 2>/dev/null
  rm -f "$TLS_DIR/$name.csr" "$TLS_DIR/$name.ext"
}

tls_new_ca() {
  local name=$1 subject=$2
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$subject" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -keyout "$TLS_DIR/$name.key" -out "$TLS_DIR/$name.pem" 2>/dev/null
}

# tls_prepare: make the certificates once per state directory (they last ten
# years; the expired one is expired from the start).
tls_prepare() {
  [[ -s $TLS_DIR/complete ]] && return 0
  command -v openssl >/dev/null 2>&1 || die "openssl not found -- run scripts/bootstrap first"
  rm -rf "$TLS_DIR"
  mkdir -p "$TLS_DIR"
  chmod 0755 "$TLS_DIR"
  local server_ext="subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth"
  (
    umask 077
    tls_new_ca ca "/CN=idemq throwaway test CA"
    tls_new_ca other-ca "/CN=idemq other CA (not trusted by anything)"
    tls_issue server "/CN=localhost" "$server_ext" 3650
    tls_issue client "/CN=$APP_USER" "extendedKeyUsage=clientAuth" 3650
    tls_issue wrong-host "/CN=wrong.example" "subjectAltName=DNS:wrong.example
extendedKeyUsage=serverAuth" 3650
    tls_issue expired "/CN=localhost" "$server_ext" -1
    tls_issue other-ca-server "/CN=localhost" "$server_ext" 3650 other-ca
  ) || die "could not make the test certificates in $TLS_DIR"
  # Certificates are public; keys stay 0600 (the servers get copies of
  # their own key, owned by their users).
  chmod 0644 "$TLS_DIR"/*.pem
  rm -f "$TLS_DIR"/*.srl
  date -u '+%F %T' >"$TLS_DIR/complete"
}

# tls_install_key NAME USER DEST: a copy of key NAME, readable only by USER
# (Postgres refuses a key file others can read).
tls_install_key() {
  local name=$1 user=$2 dest=$3
  install -m 0600 "$TLS_DIR/$name.key" "$dest"
  if ((EUID == 0)); then chown "$user:$(id -gn "$user")" "$dest"; fi
}
