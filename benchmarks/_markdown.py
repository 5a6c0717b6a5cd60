"""Writing a benchmark's results into its part of BENCHMARKS.md."""

import os
import tempfile


def replace_subsection(path, section, heading, text):
    """Replaces (or appends) the `heading` block inside `<!-- section: NAME -->`.

    The block runs from `heading` to the next `### ` heading or the end of the
    section; the other sub-sections are kept as they are. The file is written
    atomically (temporary file, then `os.replace`).
    """
    with open(path) as f:
        content = f.read()
    start_marker = f"<!-- section: {section} -->"
    end_marker = f"<!-- end section: {section} -->"
    start = content.index(start_marker) + len(start_marker)
    end = content.index(end_marker)
    body = content[start:end]
    if heading in body:
        head, rest = body.split(heading, 1)
        tail = rest[rest.index("\n### ") + 1 :] if "\n### " in rest else ""
    else:
        head, tail = body, ""
    head = head.rstrip("\n") + "\n\n" if head.strip() else "\n"
    body = head + text + ("\n" + tail if tail else "")
    _write(path, content[:start] + body + content[end:])


def replace_section(path, section, text):
    """Replaces the text inside `<!-- section: NAME -->` (appended if missing).

    The file is written atomically (temporary file, then `os.replace`).
    """
    with open(path) as f:
        content = f.read()
    start_marker = f"<!-- section: {section} -->"
    end_marker = f"<!-- end section: {section} -->"
    if start_marker not in content:
        content = f"{content.rstrip()}\n\n{start_marker}\n{end_marker}\n"
    head, rest = content.split(start_marker, 1)
    _, tail = rest.split(end_marker, 1)
    text = text if text.endswith("\n") else text + "\n"
    _write(path, f"{head}{start_marker}\n{text}{end_marker}{tail}")


def _write(path, content):
    fd, tmp = tempfile.mkstemp(
        dir=os.path.dirname(os.path.abspath(path)), prefix=".md."
    )
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
