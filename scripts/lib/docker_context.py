"""Assembles what an image build sees, without Docker: the build context as
.dockerignore defines it, then the Dockerfile's COPY instructions into an
image directory, and prints the cargo commands of its RUN instructions.

.dockerignore follows Docker's rules: one pattern a line, `#` comments,
`!` re-includes, `*` and `?` stay within one path segment, `**` spans any
number of segments, a pattern that matches a directory matches everything
under it, and the last matching line decides.

usage: [DOCKERIGNORE=FILE] docker_context.py CONTEXT_DIR DOCKERFILE OUT_DIR
  Copies the context into OUT_DIR/context, the COPY sources (relative to
  the context, into the Dockerfile's WORKDIR) into OUT_DIR/image, and
  prints one line per `cargo ...` command the RUN instructions hold.
Exit status 1 when a COPY source is missing from the context.
"""

import os
import re
import shlex
import shutil
import sys


def pattern_regex(pattern):
    """A .dockerignore pattern as a regular expression over a relative path."""
    out, i = "", 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if ch == "*":
            out += "[^/]*"
        elif ch == "?":
            out += "[^/]"
        elif ch == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(ch)
            else:
                out += pattern[i:end + 1].replace("[!", "[^")
                i = end
        else:
            out += re.escape(ch)
        i += 1
    return re.compile(out + r"\Z")


def read_ignore(path):
    rules = []
    if not os.path.exists(path):
        return rules
    for line in open(path):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:].strip()
        line = os.path.normpath(line).lstrip("/")
        rules.append((negate, pattern_regex(line)))
    return rules


def excluded(rel, rules):
    """Docker's decision for one file: the last rule that matches the path
    or one of its parent directories."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    out = False
    for negate, rx in rules:
        if any(rx.match(p) for p in prefixes):
            out = not negate
    return out


def assemble_context(root, out):
    # DOCKERIGNORE: another ignore file, for the check's own self-test.
    rules = read_ignore(os.environ.get("DOCKERIGNORE") or os.path.join(root, ".dockerignore"))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for f in filenames:
            src = os.path.join(dirpath, f)
            rel = os.path.relpath(src, root)
            if excluded(rel, rules):
                continue
            dst = os.path.join(out, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copy2(src, dst)


def instructions(dockerfile):
    """(INSTRUCTION, rest) pairs of every stage, with line continuations
    joined."""
    text = open(dockerfile).read()
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        yield word.upper(), rest.strip()


def main(root, dockerfile, out):
    context = os.path.join(out, "context")
    image = os.path.join(out, "image")
    assemble_context(root, context)
    workdir = "/"
    ok = True
    for word, rest in instructions(dockerfile):
        if word == "FROM":
            workdir = "/"  # each stage starts afresh
        elif word == "WORKDIR":
            workdir = os.path.join(workdir, rest)
        elif word == "COPY":
            args = [a for a in shlex.split(rest) if not a.startswith("--")]
            if any(a.startswith("--from") for a in shlex.split(rest)):
                continue
            *sources, dest = args
            base = os.path.join(image, os.path.join(workdir, dest).lstrip("/"))
            for s in sources:
                src = os.path.join(context, s)
                if not os.path.exists(src):
                    print(f"COPY {s}: not in the build context", file=sys.stderr)
                    ok = False
                elif os.path.isdir(src):
                    shutil.copytree(src, base, dirs_exist_ok=True)
                else:
                    os.makedirs(base, exist_ok=True)
                    shutil.copy2(src, os.path.join(base, os.path.basename(s)))
        elif word == "RUN":
            for cmd in rest.split("&&"):
                words = shlex.split(cmd)
                while words and words[0].startswith("--"):
                    words.pop(0)  # RUN's own options (--mount=...)
                if words and words[0] == "cargo":
                    print(os.path.join(image, workdir.lstrip("/")), shlex.join(words))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
