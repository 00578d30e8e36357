#!/bin/sh
# MinIO's root credentials for docker-compose.yaml, written into DIR (the minio-credentials volume) before MinIO starts:
#   root-user, root-password   read by MinIO (MINIO_ROOT_USER_FILE / MINIO_ROOT_PASSWORD_FILE) and by createbucket
#   aws-credentials            the same pair as an AWS shared credentials file, read by vectorkeeper
#                              (AWS_SHARED_CREDENTIALS_FILE), owned by CREDENTIALS_OWNER (uid:gid) when that is set
# MINIO_ROOT_USER and MINIO_ROOT_PASSWORD (from .env), when set, are written every time, so changing them takes effect
# at the next `docker compose up`. Unset, the pair already in DIR stays; with none there, a random one is made. There is
# no built-in default: MinIO's own (minioadmin) is what an absent file would fall back to, hence the check in minio's
# command too. Plain POSIX sh and busybox tools, so it runs in any small image and in the tests.
set -eu

dir=${1:?usage: minio-credentials.sh DIR}
user=${MINIO_ROOT_USER:-}
password=${MINIO_ROOT_PASSWORD:-}

fail() {
  echo "minio-credentials: $*" >&2
  exit 1
}

# Letters and digits only: nothing that MinIO (which trims files) or the SDK's INI reader (# and ; comments) reads
# differently from what was written.
random() {
  LC_ALL=C tr -dc 'A-Za-z0-9' </dev/urandom | head -c "$1"
}

# MinIO's own limits, and no whitespace or control characters, which both readers would trim or split on.
check() {
  name=$1 value=$2 min=$3
  [ "${#value}" -ge "$min" ] || fail "$name must be at least $min characters; fix it in .env, or remove it to use generated credentials"
  case $value in
    *[[:space:]]* | *[[:cntrl:]]*) fail "$name must not contain spaces or control characters; fix it in .env" ;;
  esac
}

# Written next to the final file, then renamed: a crash never leaves half a credential behind.
put() {
  (umask 077 && printf '%s\n' "$2" >"$dir/.$1.tmp")
  mv -f "$dir/.$1.tmp" "$dir/$1"
}

[ -d "$dir" ] || fail "$dir is not a directory"
if [ -n "$user" ] || [ -n "$password" ]; then
  [ -n "$user" ] && [ -n "$password" ] || fail "set both MINIO_ROOT_USER and MINIO_ROOT_PASSWORD in .env, or neither (then generated ones are used)"
  check MINIO_ROOT_USER "$user" 3
  check MINIO_ROOT_PASSWORD "$password" 8
  put root-user "$user"
  put root-password "$password"
  echo "minio-credentials: using MINIO_ROOT_USER and MINIO_ROOT_PASSWORD from the environment"
elif [ -s "$dir/root-user" ] && [ -s "$dir/root-password" ]; then
  IFS= read -r user <"$dir/root-user"
  IFS= read -r password <"$dir/root-password"
  echo "minio-credentials: keeping the credentials already in $dir"
else
  user=vk$(random 14)
  password=$(random 40)
  put root-user "$user"
  put root-password "$password"
  echo "minio-credentials: generated new credentials in $dir"
fi

# key=value with no spaces: the SDK reads " #" or " ;" as the start of a comment.
put aws-credentials "$(printf '[default]\naws_access_key_id=%s\naws_secret_access_key=%s' "$user" "$password")"
if [ -n "${CREDENTIALS_OWNER:-}" ]; then chown "$CREDENTIALS_OWNER" "$dir/aws-credentials"; fi
