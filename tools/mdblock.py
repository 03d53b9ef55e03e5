"""A generated block of a Markdown file: the lines between the markers
<!-- NAME:begin --> and <!-- NAME:end --> are written by a tool from the
files they describe, never by hand, and CI checks that they are current.
Shared by tools/dirty_results.py and tools/claims_block.py."""
import sys


def markers(name):
    return "<!-- %s:begin -->" % name, "<!-- %s:end -->" % name


def replaced(path, name, text):
    """The file's text and the text with the block NAME replaced by text."""
    begin, end = markers(name)
    with open(path) as f:
        doc = f.read()
    if begin not in doc or end not in doc:
        sys.exit("%s: markers %s ... %s not found" % (path, begin, end))
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    return doc, head + begin + "\n" + text + "\n" + end + tail


def update(path, name, text):
    _, new = replaced(path, name, text)
    with open(path, "w") as f:
        f.write(new)


def check(path, name, text, what, tool):
    """Exit 1 naming the command that refreshes the block when it is stale."""
    old, new = replaced(path, name, text)
    if old != new:
        sys.exit("%s: %s is stale; run %s --update %s and commit it" % (path, what, tool, path))
    print("%s: %s is current" % (path, what))


def main(argv, tool, name, what, text_fn):
    """The command line both tools share: no argument prints the block,
    --update FILE rewrites it in FILE, --check FILE exits 1 if it is stale."""
    if len(argv) == 3 and argv[1] in ("--update", "--check"):
        text = text_fn()
        if argv[1] == "--update":
            update(argv[2], name, text)
        else:
            check(argv[2], name, text, what, tool)
    elif len(argv) == 1:
        print(text_fn())
    else:
        sys.exit("usage: %s [--update FILE | --check FILE]" % tool)
