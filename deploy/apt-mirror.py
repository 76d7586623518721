#!/usr/bin/env python3
"""Prints the Debian mirror that apt itself uses for a suite (default bookworm).

deploy/test.sh gives this mirror to debootstrap. It reads the sources the way
apt does, so a commented-out or disabled mirror is never taken:
  - <root>/sources.list and <root>/sources.list.d/*.list: one-line `deb` entries
    (`deb [options] URI SUITE COMPONENT...`); `#` starts a comment;
  - <root>/sources.list.d/*.sources: deb822 stanzas separated by blank lines;
    a stanza counts when its Types include `deb`, its Suites include SUITE and
    it is not `Enabled: no`; lines starting with `#` are comments;
  - files in sources.list.d whose names apt ignores (another extension, such as
    `*.disabled-by-farm`, or characters outside [A-Za-z0-9_.-]) are skipped.
Files are read in apt's order: sources.list first, then sources.list.d by name.

Exits 1 with a message naming every file read when no mirror is found.
Self-test: `apt-mirror.py --self-test` checks the rules above on made-up files.
"""

import argparse
import os
import re
import sys
import tempfile

VALID_PART = re.compile(r"^[A-Za-z0-9_.\-]+$")


def source_files(root):
    """The files apt reads, in apt's order: (path, format)."""
    files = []
    main = os.path.join(root, "sources.list")
    if os.path.isfile(main):
        files.append((main, "list"))
    parts = os.path.join(root, "sources.list.d")
    if os.path.isdir(parts):
        for name in sorted(os.listdir(parts)):
            path = os.path.join(parts, name)
            if not os.path.isfile(path) or not VALID_PART.match(name):
                continue
            if name.endswith(".list"):
                files.append((path, "list"))
            elif name.endswith(".sources"):
                files.append((path, "sources"))
    return files


def one_line_uris(text, suite):
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):
            # Options: "[arch=amd64 signed-by=...]", possibly spread over words.
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 2 and words[1] == suite:
            yield words[0]


def deb822_uris(text, suite):
    stanzas, fields, key = [], {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
            continue
        if raw[0] in " \t" and key:  # continuation line
            fields[key] += " " + raw.strip()
            continue
        if ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            fields[key] = value.strip()
    for fields in stanzas:
        if fields.get("enabled", "yes").lower() == "no":
            continue
        if "deb" not in fields.get("types", "").split():
            continue
        if suite not in fields.get("suites", "").split():
            continue
        yield from fields.get("uris", "").split()


def find_mirror(root, suite):
    read = []
    for path, kind in source_files(root):
        read.append(path)
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        uris = one_line_uris(text, suite) if kind == "list" else deb822_uris(text, suite)
        for uri in uris:
            if uri.startswith(("http://", "https://")):
                return uri, read
    return None, read


def self_test():
    with tempfile.TemporaryDirectory() as root:
        parts = os.path.join(root, "sources.list.d")
        os.makedirs(parts)

        def write(name, text):
            with open(os.path.join(parts, name), "w") as f:
                f.write(text)

        write("google.list.disabled-by-farm", "deb https://ignored.example/debian bookworm main\n")
        write("a.sources.disabled-by-farm", "Types: deb\nURIs: https://ignored.example/debian\nSuites: bookworm\n")
        write("bad name.list", "deb https://ignored.example/debian bookworm main\n")
        write(
            "debian.sources",
            "Types: deb\n"
            "# http://snapshot.example/archive/debian/20250520T000000Z\n"
            "URIs: http://deb.example/debian\n"
            "Suites: bookworm bookworm-updates\nComponents: main\n\n"
            "Types: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n",
        )
        assert find_mirror(root, "bookworm")[0] == "http://deb.example/debian", find_mirror(root, "bookworm")
        assert find_mirror(root, "bookworm-security")[0] == "http://deb.example/debian-security"
        write("0-off.sources", "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n")
        assert find_mirror(root, "bookworm")[0] == "http://deb.example/debian"
        with open(os.path.join(root, "sources.list"), "w") as f:
            f.write("# deb http://commented.example/debian bookworm main\n"
                    "deb-src http://src.example/debian bookworm main\n"
                    "deb [arch=amd64 signed-by=/k.gpg] http://list.example/debian bookworm main # note\n")
        assert find_mirror(root, "bookworm")[0] == "http://list.example/debian"
        mirror, read = find_mirror(root, "trixie")
        assert mirror is None and len(read) == 3, (mirror, read)
    print("apt-mirror self-test passed")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/etc/apt", help="apt's configuration folder")
    parser.add_argument("--suite", default="bookworm")
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        self_test()
        return 0
    mirror, read = find_mirror(args.root, args.suite)
    if mirror is None:
        print(
            f"apt-mirror: no enabled 'deb' source for suite {args.suite} with an http(s) URI; "
            f"files read: {', '.join(read) or 'none'}",
            file=sys.stderr,
        )
        return 1
    print(mirror)
    return 0


if __name__ == "__main__":
    sys.exit(main())
