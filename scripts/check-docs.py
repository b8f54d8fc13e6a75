#!/usr/bin/env python3
"""Check that every public function, initializer and subscript carries a complete `///` doc comment.

Usage: scripts/check-docs.py [--counts] [PATH ...]     (PATH: Swift files or folders; default: Sources)

A declaration is checked when it is effectively public: it is marked `public` or `open`, or it is a member of a
`public protocol` / an unmarked member of a `public extension`, and no enclosing type is declared with a lower access
level. For each one the script reports:
  - no doc:        no `///` (or `/** */`) comment directly above it (attributes may sit in between);
  - no Throws:     it `throws` (typed or not) or `rethrows`, and the comment has no `- Throws:` line;
  - parameter:     a named parameter missing from `- Parameter name:` / the `- Parameters:` list, or a documented
                   name the declaration does not have. Names are the internal ones (what DocC checks), so
                   `to destination: URL` is documented as `destination`; a parameter whose internal name is `_`
                   cannot be documented and is skipped;
  - no Returns:    it is `async` and returns something other than `Void`/`()`/`Never`, and the comment has no
                   `- Returns:` line.

It also checks every `<doc:Article#Heading>` link in the scanned files, comments included: the article must be in a
`.docc` catalogue of the same target (the folder under `Sources/`), and the heading must be one of its headings.
DocC itself resolves the article but not the heading.

Exemptions, from parameter documentation only (they still need a summary, and `- Throws:` when they throw):
  - operator functions (`==`, `<`, `+`, `~=`, ...): the operands are the operator's meaning;
  - `encode(to:)`, `init(from:)` (Codable) and `hash(into:)` (Hashable): standard library requirements whose
    parameter is always the encoder, decoder or hasher.

Limitations: the scan is textual (comments and string literals are blanked first, braces are matched), not a Swift
parser. Members of an extension without an access modifier count as public only when marked so themselves, since the
extended type's access is not resolved across files. `#if` branches are all scanned.

Exit status: 0 when nothing is reported, 1 when something is, 2 on a usage error.
"""

import os
import re
import sys

DECL_KEYWORDS = ("func", "init", "subscript")
ACCESS_WORDS = {"public", "open", "package", "internal", "fileprivate", "private"}
MODIFIER_WORDS = ACCESS_WORDS | {
    "static", "class", "final", "override", "required", "convenience", "mutating", "nonmutating", "nonisolated",
    "dynamic", "optional", "indirect", "lazy", "weak", "unowned", "consuming", "borrowing", "distributed",
    "prefix", "postfix", "infix", "isolated", "__consuming",
}
TYPE_KEYWORDS = ("struct", "class", "enum", "actor", "protocol", "extension")
PARAMETER_EXEMPT = {("encode", ("to",)), ("init", ("from",)), ("hash", ("into",))}
OPERATOR_CHARS = set("/=-+!*%<>&|^~?.")


def blank(text):
    """Returns `text` with comments and string-literal contents replaced by spaces; newlines are kept."""
    out = list(text)
    n = len(text)
    i = 0
    # Stack of contexts: "code" (top level or inside an interpolation, with its paren depth) or a string.
    stack = [["code", 0]]

    def wipe(a, b):
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        top = stack[-1]
        if top[0] == "code":
            if text.startswith("//", i):
                j = text.find("\n", i)
                j = n if j < 0 else j
                wipe(i, j)
                i = j
                continue
            if text.startswith("/*", i):
                depth, j = 1, i + 2
                while j < n and depth:
                    if text.startswith("/*", j):
                        depth, j = depth + 1, j + 2
                    elif text.startswith("*/", j):
                        depth, j = depth - 1, j + 2
                    else:
                        j += 1
                wipe(i, j)
                i = j
                continue
            m = re.compile(r'(#*)("""|")').match(text, i)
            if m and (m.group(1) == "" or text[i] == "#"):
                hashes, quote = len(m.group(1)), m.group(2)
                stack.append(["string", hashes, quote])
                i = m.end()
                continue
            c = text[i]
            if len(stack) > 1:
                if c == "(":
                    top[1] += 1
                elif c == ")":
                    if top[1] == 0:
                        stack.pop()  # end of an interpolation: back inside the string
                        i += 1
                        continue
                    top[1] -= 1
            i += 1
        else:
            _, hashes, quote = top
            closing = quote + "#" * hashes
            if text.startswith(closing, i):
                stack.pop()
                i += len(closing)
                continue
            escape = "\\" + "#" * hashes
            if text.startswith(escape + "(", i):
                wipe(i, i + len(escape) + 1)
                stack.append(["code", 0])
                i += len(escape) + 1
                continue
            if text.startswith(escape, i):
                wipe(i, min(n, i + len(escape) + 1))
                i += len(escape) + 1
                continue
            if text[i] != "\n":
                out[i] = " "
            i += 1
    return "".join(out)


def matching(code, start, opening, closing):
    """Index just past the bracket that closes the one at `start`, skipping `->` when matching angle brackets."""
    depth = 0
    i = start
    while i < len(code):
        c = code[i]
        if opening == "<" and c == ">" and i > 0 and code[i - 1] == "-":
            i += 1
            continue
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return len(code)


def split_top_level(s, separator=","):
    """Splits `s` on `separator` where no bracket of any kind is open."""
    parts, depth, current = [], 0, []
    for k, c in enumerate(s):
        if c in "([{<":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == ">" and not (k > 0 and s[k - 1] == "-"):
            depth -= 1
        if c == separator and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(c)
    if "".join(current).strip():
        parts.append("".join(current))
    return parts


def brace_pairs(code):
    """Maps each `{` index to the index of its `}`."""
    pairs, stack = {}, []
    for i, c in enumerate(code):
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            pairs[stack.pop()] = i
    return pairs


def scopes(code, pairs):
    """Type-like scopes: (body start, body end, keyword, access) for struct/class/enum/actor/protocol/extension."""
    result = []
    pattern = re.compile(r"\b(" + "|".join(TYPE_KEYWORDS) + r")\s+[A-Za-z_`]")
    for m in pattern.finditer(code):
        keyword = m.group(1)
        line_start = code.rfind("\n", 0, m.start()) + 1
        prefix = code[line_start:m.start()]
        words = re.findall(r"[A-Za-z_]+", re.sub(r"@\w+(\([^)]*\))?", " ", prefix))
        if any(w not in MODIFIER_WORDS for w in words):
            continue  # `class func`, `.class`, `case struct`, ... are not type declarations
        if keyword == "class" and re.match(r"class\s+(func|var|let|subscript|override|final)\b", code[m.start():]):
            continue
        brace = code.find("{", m.end())
        if brace < 0 or brace not in pairs:
            continue
        access = next((w for w in words if w in ACCESS_WORDS), None)
        result.append((brace, pairs[brace], keyword, access))
    return result


def enclosing(position, type_scopes, pairs_by_open):
    """Type scopes that contain `position`, outermost first, and whether the innermost brace is a type body."""
    containing = [s for s in type_scopes if s[0] < position < s[1]]
    containing.sort(key=lambda s: s[0])
    innermost_brace = max((o for o, c in pairs_by_open.items() if o < position < c), default=None)
    direct = bool(containing) and containing[-1][0] == innermost_brace
    return containing, direct


def doc_lines(lines, decl_line):
    """The doc comment text above line index `decl_line`, skipping attribute lines; None when there is none."""
    k = decl_line - 1
    while k >= 0 and lines[k].strip().startswith("@"):
        k -= 1
    collected = []
    if k >= 0 and lines[k].strip().endswith("*/"):
        end = k
        while k >= 0 and "/**" not in lines[k]:
            k -= 1
        if k < 0:
            return None
        block = "\n".join(lines[k:end + 1])
        block = block[block.find("/**") + 3:block.rfind("*/")]
        return [re.sub(r"^\s*\*?\s?", "", line) for line in block.split("\n")]
    while k >= 0 and lines[k].strip().startswith("///"):
        text = lines[k].strip()[3:]
        collected.append(text[1:] if text.startswith(" ") else text)
        k -= 1
    if not collected:
        return None
    return list(reversed(collected))


def documented(doc):
    """Parameter names, and whether `- Throws:` and `- Returns:` appear, in a doc comment."""
    names, has_throws, has_returns = [], False, False
    in_list_indent = None
    for line in doc:
        indent = len(line) - len(line.lstrip())
        stripped = line.strip()
        if in_list_indent is not None:
            item = re.match(r"-\s+([A-Za-z_`][\w`]*)\s*:", stripped)
            if item and indent > in_list_indent:
                names.append(item.group(1).strip("`"))
                continue
            if stripped and indent <= in_list_indent:
                in_list_indent = None
        single = re.match(r"-\s+[Pp]arameter\s+([A-Za-z_`][\w`]*)\s*:", stripped)
        if single:
            names.append(single.group(1).strip("`"))
        elif re.match(r"-\s+[Pp]arameters\s*:", stripped):
            in_list_indent = indent
        elif re.match(r"-\s+[Tt]hrows\s*:", stripped):
            has_throws = True
        elif re.match(r"-\s+[Rr]eturns\s*:", stripped):
            has_returns = True
    return names, has_throws, has_returns


def parse_signature(code, keyword_end, keyword):
    """Name, parameters [(label, internal name)], effects text, return type and end index of a declaration."""
    i = keyword_end
    name = keyword
    if keyword == "func":
        m = re.compile(r"\s*(`[^`]+`|[A-Za-z_][\w]*|[" + re.escape("".join(OPERATOR_CHARS)) + r"]+)").match(code, i)
        if not m:
            return None
        name = m.group(1).strip("`")
        i = m.end()
    elif keyword == "init":
        m = re.compile(r"[?!]?").match(code, i)
        i = m.end()
    while i < len(code) and code[i] in " \t\n":
        i += 1
    if i < len(code) and code[i] == "<":
        i = matching(code, i, "<", ">")
    while i < len(code) and code[i] in " \t\n":
        i += 1
    if i >= len(code) or code[i] != "(":
        return None
    close = matching(code, i, "(", ")")
    params = []
    for part in split_top_level(code[i + 1:close - 1]):
        head = split_top_level(part, ":")[0] if ":" in part else part
        words = [w.strip("`") for w in head.split()]
        words = [w for w in words if not w.startswith("@")]
        if not words:
            continue
        label = words[0]
        internal = words[-1]
        if keyword == "subscript" and len(words) == 1:
            label = "_"
        params.append((label, internal))
    # Effects and return type run up to the body, or to the end of the line for a protocol requirement, unless the
    # next line goes on with the signature.
    continuations = ("->", "where", "throws", "async", "rethrows")
    end = close
    depth = 0
    while end < len(code):
        c = code[end]
        if c in "([<":
            depth += 1
        elif c in ")]" or (c == ">" and code[end - 1] != "-"):
            depth -= 1
        if depth <= 0:
            if c == "{":
                break
            if c == "\n" and not code[end:].lstrip().startswith(continuations):
                break
        end += 1
    tail = code[close:end]
    tail = re.split(r"\bwhere\b", tail)[0]
    arrow = tail.find("->")
    effects = tail if arrow < 0 else tail[:arrow]
    returns = None if arrow < 0 else tail[arrow + 2:].strip()
    return name, params, effects, returns


DOC_LINK = re.compile(r"<doc:([A-Za-z0-9_-]+)#([^>\s]+)>")
_catalogues = {}


def heading_anchor(text):
    """The fragment DocC gives a heading: its words joined by hyphens, without quotes and angle brackets."""
    return re.sub(r"[\"'`<>]", "", "-".join(text.split()))


def catalogue_anchors(path):
    """Maps each article of the catalogues of the target that holds `path` to its heading anchors."""
    target = os.path.abspath(path)
    while os.path.basename(os.path.dirname(target)) != "Sources":
        parent = os.path.dirname(target)
        if parent == target:
            return {}
        target = parent
    if target not in _catalogues:
        articles = {}
        for root, _, files in os.walk(target):
            if ".docc" not in root:
                continue
            for file in files:
                if file.endswith(".md"):
                    with open(os.path.join(root, file), encoding="utf-8") as handle:
                        headings = re.findall(r"(?m)^#{1,6}\s+(.+?)\s*$", handle.read())
                    articles[file[:-3]] = {heading_anchor(h) for h in headings}
        _catalogues[target] = articles
    return _catalogues[target]


def check_doc_links(path, text):
    problems = []
    for m in DOC_LINK.finditer(text):
        article, anchor = m.groups()
        line = text.count("\n", 0, m.start()) + 1
        articles = catalogue_anchors(path)
        if article not in articles:
            problems.append(f"{path}:{line}: {m.group(0)}: no article {article} in the target's DocC catalogue")
        elif anchor not in articles[article]:
            problems.append(f"{path}:{line}: {m.group(0)}: {article}.md has no heading with that anchor")
    return problems


def check_file(path):
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    code = blank(text)
    lines = text.split("\n")
    pairs = brace_pairs(code)
    type_scopes = scopes(code, pairs)
    problems = check_doc_links(path, text)
    pattern = re.compile(r"(?<![\w.])(" + "|".join(DECL_KEYWORDS) + r")\b")
    for m in pattern.finditer(code):
        keyword = m.group(1)
        line_start = code.rfind("\n", 0, m.start()) + 1
        prefix = code[line_start:m.start()]
        # Attributes may carry arguments; everything else before the keyword must be a modifier.
        bare = re.sub(r"@\w+(\([^)]*\))?", " ", prefix)
        words = re.findall(r"[^\s]+", bare)
        if any(re.sub(r"\(.*\)$", "", w) not in MODIFIER_WORDS for w in words):
            continue
        access = next((re.sub(r"\(.*\)$", "", w) for w in words if re.sub(r"\(.*\)$", "", w) in ACCESS_WORDS), None)
        containing, direct = enclosing(m.start(), type_scopes, pairs)
        if containing and not direct:
            continue  # declared inside a function or closure body
        if any(s[2] != "extension" and s[3] not in ("public", "open") for s in containing):
            continue  # some enclosing type is not public
        if access in ("public", "open"):
            pass
        elif access is None and containing and containing[-1][3] in ("public", "open") \
                and containing[-1][2] in ("protocol", "extension"):
            pass
        else:
            continue
        signature = parse_signature(code, m.end(), keyword)
        if signature is None:
            continue
        name, params, effects, returns = signature
        decl_line = code.count("\n", 0, m.start())
        shown = f"{name}({''.join(label + ':' for label, _ in params)})"
        where = f"{path}:{decl_line + 1}: {shown}"
        doc = doc_lines(lines, decl_line)
        if doc is None:
            problems.append(f"{where}: no /// doc comment")
            continue
        names, has_throws, has_returns = documented(doc)
        if re.search(r"\b(throws|rethrows)\b", effects) and not has_throws:
            problems.append(f"{where}: throws, but the doc has no '- Throws:'")
        operator = all(c in OPERATOR_CHARS for c in name)
        exempt = operator or (name, tuple(label for label, _ in params)) in PARAMETER_EXEMPT
        if not exempt:
            wanted = [internal for _, internal in params if internal != "_"]
            missing = [p for p in wanted if p not in names]
            extra = [p for p in names if p not in wanted]
            if missing:
                problems.append(f"{where}: parameters not documented: {', '.join(missing)}")
            if extra:
                problems.append(f"{where}: documents parameters it does not have: {', '.join(extra)}")
        if keyword == "func" and re.search(r"\basync\b", effects) and returns \
                and returns not in ("Void", "()", "Never") and not has_returns:
            problems.append(f"{where}: async and returns {returns}, but the doc has no '- Returns:'")
    return problems


def swift_files(paths):
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(files):
                    if file.endswith(".swift"):
                        yield os.path.join(root, file)
        elif path.endswith(".swift") and os.path.isfile(path):
            yield path
        else:
            raise SystemExit(f"check-docs: not a Swift file or folder: {path}")


def main(argv):
    counts = "--counts" in argv
    paths = [a for a in argv if a != "--counts"]
    if any(a.startswith("-") for a in paths):
        print(__doc__.strip().split("\n")[2], file=sys.stderr)
        return 2
    try:
        files = list(swift_files(paths or ["Sources"]))
    except SystemExit as error:
        print(error, file=sys.stderr)
        return 2
    total = 0
    for path in files:
        problems = check_file(path)
        total += len(problems)
        if counts:
            if problems:
                print(f"{len(problems):4d}  {path}")
        else:
            for problem in problems:
                print(problem)
    if total:
        print(f"check-docs: {total} problem(s) in {len(files)} file(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
