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

# MinIO's own limits, and no whitespace or control characters, which both readers would trim or split on. FIX says
# where the value came from and how to change it.
check() {
  name=$1 value=$2 min=$3 fix=$4
  [ "${#value}" -ge "$min" ] || fail "$name must be at least $min characters; $fix"
  case $value in
    *[[:space:]]* | *[[:cntrl:]]*) fail "$name must not contain spaces or control characters; $fix" ;;
  esac
}

# Written next to the final file, synced, then renamed: a crash (even a power loss) never leaves half a credential or an
# empty file behind, which the next run would replace, silently changing MinIO's root login. OWNER (uid:gid), when
# given, owns the file before it takes the final name.
put() {
  tmp="$dir/.$1.tmp"
  (umask 077 && printf '%s\n' "$2" >"$tmp")
  if [ -n "${3:-}" ] && ! chown "$3" "$tmp" 2>/dev/null; then
    rm -f "$tmp"
    fail "cannot chown $1 to $3 (the uid:gid of the vectorkeeper image's user); fix CREDENTIALS_OWNER in docker-compose.yaml"
  fi
  sync "$tmp"
  mv -f "$tmp" "$dir/$1"
}

# The first line of a file, also when it lacks a final newline (read then fails at end of file, having read the line).
first_line() {
  line=
  IFS= read -r line 2>/dev/null <"$1" || [ -n "$line" ] || fail "cannot read $1"
  printf '%s' "$line"
}

[ -d "$dir" ] || fail "$dir is not a directory"
if [ -n "$user" ] || [ -n "$password" ]; then
  [ -n "$user" ] && [ -n "$password" ] || fail "set both MINIO_ROOT_USER and MINIO_ROOT_PASSWORD in .env, or neither (then generated ones are used)"
  check MINIO_ROOT_USER "$user" 3 "fix it in .env, or remove it to use generated credentials"
  check MINIO_ROOT_PASSWORD "$password" 8 "fix it in .env, or remove it to use generated credentials"
  put root-user "$user"
  put root-password "$password"
  outcome="using MINIO_ROOT_USER and MINIO_ROOT_PASSWORD from the environment"
elif [ -s "$dir/root-user" ] && [ -s "$dir/root-password" ]; then
  # Checked as .env's values are: a file holding only a newline (a hand edit) is not empty to `-s`, but MinIO trims it
  # to nothing, which it reads as unset, that is its default login.
  user=$(first_line "$dir/root-user")
  password=$(first_line "$dir/root-password")
  fix="the file in the minio-credentials volume is unusable: set MINIO_ROOT_USER and MINIO_ROOT_PASSWORD in .env, or delete the volume to generate new ones"
  check "MINIO_ROOT_USER (root-user)" "$user" 3 "$fix"
  check "MINIO_ROOT_PASSWORD (root-password)" "$password" 8 "$fix"
  outcome="keeping the credentials already in $dir"
else
  user=vk$(random 14)
  password=$(random 40)
  # The pipeline's status is head's: a tr that could not read /dev/urandom shows only as a short result.
  [ "${#user}" -eq 16 ] && [ "${#password}" -eq 40 ] || fail "could not read random characters from /dev/urandom"
  put root-user "$user"
  put root-password "$password"
  outcome="generated new credentials in $dir"
fi

# key=value with no spaces: the SDK reads " #" or " ;" as the start of a comment.
put aws-credentials "$(printf '[default]\naws_access_key_id=%s\naws_secret_access_key=%s' "$user" "$password")" "${CREDENTIALS_OWNER:-}"
echo "minio-credentials: $outcome"
