"""Griffe extensions for the API reference (tools/make_docs.py).

- `HideUndocumentedInstanceAttributes`: a class's undocumented instance attributes (`self.teacher = teacher` in
  `__init__`) are implementation detail, not API, and are left out of its page.
- `Docments`: parameters documented nbdev's way, by a comment after each one in the signature, become the docstring's
  `Args:` section, i.e. the parameter table of the page; a class attribute (a dataclass field) documented the same way, by
  a comment at the end of its line, or a settings field's `setting(default, help, ...)`, gets that text as its docstring,
  so that the page lists it (`TrainConfig`'s knobs, every method's settings)."""
import re

import griffe


class HideUndocumentedInstanceAttributes(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs) -> None:
        for name, member in list(cls.members.items()):
            if (not member.is_alias and member.is_attribute and not member.docstring
                    and 'instance-attribute' in member.labels):
                cls.del_member(name)


def docments(source: str) -> dict:
    """nbdev's docments, read from source text: `{parameter: comment}` for the comment at the end of the line where each
    parameter of the first `def` in `source` is written (`x: Tensor,  # the noisy image`); a comment alone on the next
    line continues it."""
    import io, tokenize
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    toks = toks[next((i for i, t in enumerate(toks) if t.type == tokenize.NAME and t.string == 'def'), 0):]   # past decorators
    out, depth, last, prev, started, doc_line, end = {}, 0, None, None, False, None, None
    for j, tok in enumerate(toks):
        if not started:
            started = tok.type == tokenize.OP and tok.string == '(' and prev is not None and prev.type == tokenize.NAME
            depth = int(started); prev = tok; continue
        if end is not None and tok.start[0] > end + 1: break        # past the signature's last line and one more
        if end is None and tok.type == tokenize.OP and tok.string in '([{': depth += 1
        elif end is None and tok.type == tokenize.OP and tok.string in ')]}':
            depth -= 1
            if depth == 0: end = tok.start[0]                        # `last: int = 0) -> T:  # its comment` still counts
        elif end is None and tok.type == tokenize.NAME and depth == 1 and prev.type == tokenize.OP and prev.string in ('(', ',', '*', '**'):
            last = (tok.string, tok.start[0])
        elif tok.type == tokenize.COMMENT and last is not None:
            text = tok.string.lstrip('#').strip()
            if last[1] == tok.start[0] and last[0] not in out: out[last[0]], doc_line = text, tok.start[0]
            elif doc_line == tok.start[0] - 1 and toks[j - 1].type in (tokenize.NL, tokenize.NEWLINE):   # a continuation line
                out[last[0]] += ' ' + text; doc_line = tok.start[0]
        if tok.type not in (tokenize.NL, tokenize.COMMENT): prev = tok
    return out


def field_doc(source: str):
    """The documentation of a class attribute from its source: the help of a `setting(default, help, ...)` field (a literal
    string), else the comment at the end of its first line; None if neither."""
    import ast, io, tokenize
    try: value = getattr(ast.parse(source.strip()).body[0], 'value', None)
    except (SyntaxError, IndexError): value = None
    if (isinstance(value, ast.Call) and getattr(value.func, 'id', None) == 'setting' and len(value.args) > 1
            and isinstance(value.args[1], ast.Constant) and isinstance(value.args[1].value, str)):
        return value.args[1].value
    try: toks = list(tokenize.generate_tokens(io.StringIO(source.strip() + '\n').readline))
    except (tokenize.TokenError, SyntaxError): return None
    comments = [t.string.lstrip('#').strip() for t in toks if t.type == tokenize.COMMENT and t.start[0] == 1]
    return comments[0] if comments and comments[0] else None


def _runtime_help(attr: griffe.Attribute):
    "A settings field whose help is computed (an f-string): the help its dataclass holds once imported."
    import dataclasses, importlib
    cls = getattr(importlib.import_module(attr.parent.module.path), attr.parent.name)
    return {f.name: f.metadata.get('help') for f in dataclasses.fields(cls)}.get(attr.name)


class Docments(griffe.Extension):
    """Parameters documented nbdev's way, by a comment after each one in the signature, become the docstring's `Args:`
    section, which mkdocstrings shows as the parameter table (a docstring's own `Args:` section wins)."""
    def on_function_instance(self, *, func: griffe.Function, **kwargs) -> None:
        try: source = func.source
        except Exception: return
        docs = docments(source)
        if not docs: return
        doc = func.docstring
        if doc is not None and re.search(r'^\s*(Args|Arguments|Parameters):\s*$', doc.value, re.M): return
        args = '\n'.join(f'    {name}: {text}' for name, text in docs.items())
        value = (doc.value.rstrip() if doc is not None else '') + '\n\nArgs:\n' + args   # (a first line, so that griffe's
        # cleandoc keeps the indentation of the section)
        agent = kwargs.get('agent')                                  # a function without a docstring: the loader's parser (google)
        parser = doc.parser if doc else getattr(agent, 'docstring_parser', None)
        options = doc.parser_options if doc else getattr(agent, 'docstring_options', None)
        func.docstring = griffe.Docstring(value, lineno=doc.lineno if doc else func.lineno, endlineno=doc.endlineno if doc else func.lineno,
                                          parent=func, parser=parser, parser_options=options)

    def on_attribute_instance(self, *, attr: griffe.Attribute, **kwargs) -> None:
        if attr.docstring is not None or not isinstance(attr.parent, griffe.Class) or 'class-attribute' not in attr.labels: return
        try: text = field_doc(attr.source) or (_runtime_help(attr) if 'setting(' in attr.source else None)
        except Exception: return
        if text: attr.docstring = griffe.Docstring(text, lineno=attr.lineno, endlineno=attr.endlineno, parent=attr)
