#!/usr/bin/env bash
# deploy/deploy.sh [--dry-run] [--with FRAGMENT.yml]... ENV_FILE [STACK]   (docs/install.md "Deploying")
#
# Deploys swarm-utils as the stack STACK (default swarm-utils) from the operator's env file, with only
# the deploy/ fragments that file and the swarm call for, prints the `docker stack deploy` line, then
# runs it (--dry-run: prints only). Run it on a swarm manager, from any directory.
#
# - ENV_FILE holds the non-secret settings as NAME=value lines (shell syntax: quotes and # comments).
#   It is the only source: SWARM_UTILS_* variables of the calling shell are ignored, so a redeploy from
#   another shell gives the same service.
# - Secrets never go into it: they are Docker secrets with fixed names, each read by its fragment.
#   S3 and the registry are switched on by their settings (and then need their secrets); the metrics
#   tokens, the notification URL and the S3 CA certificate by the existence of their secret or config.
# - --with adds a fragment of your own (e.g. the Docker secret of a SWARM_UTILS_BACKUP_ENV_<NAME>_FILE).
# - Every variable of the file also reaches the container through deploy/env-file.yml: the
#   SWARM_UTILS_BACKUP_ENV_* passthroughs, and any misspelt name, which swarm-utils warns about.
set -euo pipefail

die() {
  printf 'deploy.sh: %s\n' "$*" >&2
  exit 2
}

usage="usage: deploy/deploy.sh [--dry-run] [--with FRAGMENT.yml]... ENV_FILE [STACK]   e.g. deploy/deploy.sh swarm-utils.env"
dry_run=false
extra=()
while [[ ${1:-} == -* ]]; do
  case $1 in
    --dry-run | -n) dry_run=true ;;
    --with) [[ -f ${2:-} ]] || die "--with needs a stack file fragment (got '${2:-}')"; extra+=("$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"); shift ;;
    *) die "$usage" ;;
  esac
  shift
done
(($# >= 1 && $# <= 2)) || die "$usage"
[[ -f $1 && -r $1 ]] || die "cannot read the env file $1"
env_file=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
stack=${2:-swarm-utils}
[[ $stack =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] || die "\"$stack\" is not a stack name"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# the secret variables of src/config.ts (SECRET_VARS, test/unit/deploy-sh.test.ts keeps them in step),
# each with the Docker secret and fragment that carry it
declare -A SECRET_OF=(
  [SWARM_UTILS_ADMIN_TOKEN_LIST]="swarm_utils_admin_tokens swarm-stack.yml"
  [SWARM_UTILS_METRICS_TOKEN_LIST]="swarm_utils_metrics_tokens deploy/metrics-secret.yml"
  [SWARM_UTILS_S3_ACCESS_KEY]="swarm_utils_s3_access_key deploy/s3-secrets.yml"
  [SWARM_UTILS_S3_SECRET_ACCESS_KEY]="swarm_utils_s3_secret_access_key deploy/s3-secrets.yml"
  [SWARM_UTILS_REGISTRY_USER]="swarm_utils_registry_user deploy/registry-secrets.yml"
  [SWARM_UTILS_REGISTRY_PASSWORD]="swarm_utils_registry_password deploy/registry-secrets.yml"
  [SWARM_UTILS_NOTIFY_URL]="swarm_utils_notify_url deploy/notify-secret.yml"
  [SWARM_UTILS_NOTIFY_URLS]="swarm_utils_notify_urls deploy/notify-urls-secret.yml"
)

# --- the env file, read in a shell of its own (nothing of this one leaks in) -----------------------
declare -A VARS=()
while IFS= read -r -d '' line; do
  VARS[${line%%=*}]=${line#*=}
done < <(env -i PATH="$PATH" HOME="${HOME:-/}" bash --norc --noprofile -c '
  set -a
  . "$1" >/dev/null || exit 1
  for v in $(compgen -v SWARM_UTILS_); do printf "%s=%s\0" "$v" "${!v}"; done
' _ "$env_file")
wait $! || die "the env file $env_file does not load as shell (NAME=value lines)"

problems=()
for name in "${!VARS[@]}"; do
  base=${name%_FILE}
  if [[ -n ${SECRET_OF[$base]:-} ]]; then
    read -r secret fragment <<<"${SECRET_OF[$base]}"
    problems+=("$name is a secret: keep it out of the env file and create the Docker secret instead: docker secret create $secret <file>  ($fragment reads it)")
  elif [[ $base == SWARM_UTILS_S3_CA_CERT ]]; then
    problems+=("$name: give the CA certificate as the Docker config swarm_utils_s3_ca instead: docker config create swarm_utils_s3_ca ca.crt  (deploy/s3-ca.yml reads it)")
  elif [[ ${VARS[$name]} == *$'\n'* ]]; then
    problems+=("$name: a value on several lines cannot be passed; put it on one line")
  elif [[ $name == SWARM_UTILS_BACKUP_ENV_* && $name != *_FILE && $name =~ PASSPHRASE|KEY|PASSWORD|TOKEN|SECRET|CREDENTIAL|CONNECTION_STRING|NOTIFICATION_URLS ]]; then
    printf 'deploy.sh: warning: %s looks like a secret and will be readable in `docker service inspect`; prefer %s_FILE with a Docker secret (docs/install.md)\n' "$name" "$name" >&2
  fi
done
((${#problems[@]} == 0)) || die "$(printf '%s\n' "in $env_file:" "${problems[@]/#/  }")"

set_in_file() { [[ -n ${VARS[$1]:-} ]]; }
set_in_file SWARM_UTILS_IMAGE || die "$env_file does not set SWARM_UTILS_IMAGE (the image to deploy, pinned by its tag, e.g. registry.example.com/swarm-utils:1.0.0)"

# --- the fragments --------------------------------------------------------------------------------
exists() { docker "$1" inspect "$2" >/dev/null 2>&1; }
missing=()
need_secret() { exists secret "$1" || missing+=("docker secret create $1 <file>   # $2"); }

files=(swarm-stack.yml deploy/env-file.yml)
plan=("+ swarm-stack.yml, deploy/env-file.yml   always (the settings, and the env file for BACKUP_ENV_* and unknown names)")
need_secret swarm_utils_admin_tokens "the admin token list"
add() { files+=("$1"); plan+=("+ $1   $2"); }
skip() { plan+=("- $1   $2"); }

if set_in_file SWARM_UTILS_REGISTRY_URL; then
  add deploy/registry-secrets.yml "SWARM_UTILS_REGISTRY_URL is set"
  need_secret swarm_utils_registry_user "the registry user"
  need_secret swarm_utils_registry_password "the registry password"
else
  skip deploy/registry-secrets.yml "SWARM_UTILS_REGISTRY_URL is not set (no private registry)"
fi

if set_in_file SWARM_UTILS_S3_DOMAIN; then
  add deploy/s3-secrets.yml "SWARM_UTILS_S3_DOMAIN is set"
  need_secret swarm_utils_s3_access_key "the S3 access key"
  need_secret swarm_utils_s3_secret_access_key "the S3 secret key"
  if [[ ${VARS[SWARM_UTILS_S3_HTTPS]:-true} == false ]]; then
    skip deploy/s3-ca.yml "SWARM_UTILS_S3_HTTPS=false"
  elif exists config swarm_utils_s3_ca; then
    add deploy/s3-ca.yml "the config swarm_utils_s3_ca exists (the S3 endpoint's CA)"
  else
    skip deploy/s3-ca.yml "no config swarm_utils_s3_ca (a publicly trusted S3 endpoint)"
  fi
  if set_in_file SWARM_UTILS_HELPER_NETWORKS; then
    [[ ${VARS[SWARM_UTILS_HELPER_NETWORKS]} != *,* ]] ||
      die "SWARM_UTILS_HELPER_NETWORKS names several networks: deploy/s3-network.yml joins one; write a fragment of your own for more"
    add deploy/s3-network.yml "SWARM_UTILS_HELPER_NETWORKS is set (an S3 service inside the swarm)"
  else
    skip deploy/s3-network.yml "SWARM_UTILS_HELPER_NETWORKS is not set"
  fi
else
  skip "deploy/s3-secrets.yml, s3-ca.yml, s3-network.yml" "SWARM_UTILS_S3_DOMAIN is not set (no backups)"
fi

if exists secret swarm_utils_metrics_tokens; then
  add deploy/metrics-secret.yml "the secret swarm_utils_metrics_tokens exists (metrics-only tokens)"
else
  skip deploy/metrics-secret.yml "no secret swarm_utils_metrics_tokens (no metrics-only token)"
fi
if exists secret swarm_utils_notify_url; then
  add deploy/notify-secret.yml "the secret swarm_utils_notify_url exists (notifications)"
else
  skip deploy/notify-secret.yml "no secret swarm_utils_notify_url (no notifications)"
fi

for f in "${extra[@]}"; do add "$f" "--with"; done

printf 'deploy.sh: stack %s from %s\n' "$stack" "$env_file"
printf '  %s\n' "${plan[@]}"
((${#missing[@]} == 0)) || die "$(printf '%s\n' "missing Docker secrets (create them, then run deploy.sh again):" "${missing[@]/#/  }")"

# --- the deploy -----------------------------------------------------------------------------------
# this shell's SWARM_UTILS_* give way to the file's; the copy for env_file is in docker's format
for v in $(compgen -e SWARM_UTILS_ || true); do
  [[ -n ${VARS[$v]+set} ]] || printf 'deploy.sh: ignoring %s of this shell (the env file decides)\n' "$v" >&2
  unset "$v"
done
passthrough=$(mktemp "${TMPDIR:-/tmp}/swarm-utils-env.XXXXXX")
trap 'rm -f "$passthrough"' EXIT
for name in "${!VARS[@]}"; do
  [[ $name == SWARM_UTILS_IMAGE ]] && continue
  printf '%s=%s\n' "$name" "${VARS[$name]}"
done | sort >"$passthrough"
for name in "${!VARS[@]}"; do export "$name=${VARS[$name]}"; done
export SWARM_UTILS_DEPLOY_ENV_FILE=$passthrough

cmd=(docker stack deploy --with-registry-auth)
for f in "${files[@]}"; do cmd+=(-c "$f"); done
cmd+=("$stack")
printf '+ %s   (with the variables of %s)\n' "${cmd[*]}" "$env_file"
$dry_run && exit 0
cd "$root"
"${cmd[@]}"
