"""Griffe extensions for the API reference (tools/make_docs.py).

- `HideUndocumentedInstanceAttributes`: a class's undocumented instance attributes (`self.teacher = teacher` in
  `__init__`) are implementation detail, not API, and are left out of its page.
- `PatchedMethods`: a notebook may define a class over several cells, adding methods with `@patch`
  (`def fit(self: Trainer, ...)` at module level, as fastcore's decorator). Griffe reads the source statically and
  would list them as module functions; they are moved into their class, where they live at run time."""
import re

import griffe


class HideUndocumentedInstanceAttributes(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs) -> None:
        for name, member in list(cls.members.items()):
            if (not member.is_alias and member.is_attribute and not member.docstring
                    and 'instance-attribute' in member.labels):
                cls.del_member(name)


def _is_patch(decorator) -> bool:
    name = str(decorator.value).split('(')[0].split('.')[-1]
    return name.startswith('patch')


class PatchedMethods(griffe.Extension):
    def on_module_members(self, *, mod: griffe.Module, **kwargs) -> None:
        for name, fn in list(mod.members.items()):
            if fn.is_alias or not fn.is_function or not any(map(_is_patch, fn.decorators)): continue
            params = list(fn.parameters)
            if not params or params[0].name != 'self' or params[0].annotation is None: continue
            cls = mod.members.get(str(params[0].annotation).strip('\'"'))
            if cls is None or cls.is_alias or not cls.is_class: continue
            mod.del_member(name)
            cls.set_member(name, fn)


def docments(source: str) -> dict:
    """nbdev's docments, read from source text: `{parameter: comment}` for the comment at the end of the line where each
    parameter of the first `def` in `source` is written (`x: Tensor,  # the noisy image`)."""
    import io, tokenize
    toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    out, depth, last, prev, started = {}, 0, None, None, False
    for tok in toks:
        if not started:
            started = tok.type == tokenize.OP and tok.string == '(' and prev is not None and prev.type == tokenize.NAME
            depth = int(started); prev = tok; continue
        if tok.type == tokenize.OP and tok.string in '([{': depth += 1
        elif tok.type == tokenize.OP and tok.string in ')]}':
            depth -= 1
            if depth == 0: break
        elif tok.type == tokenize.NAME and depth == 1 and prev.type == tokenize.OP and prev.string in ('(', ',', '*', '**'):
            last = (tok.string, tok.start[0])
        elif tok.type == tokenize.COMMENT and last is not None and last[1] == tok.start[0]:
            out[last[0]] = tok.string.lstrip('#').strip()
        if tok.type not in (tokenize.NL, tokenize.COMMENT): prev = tok
    return out


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
        value = (doc.value.rstrip() + '\n\n' if doc is not None else '') + 'Args:\n' + args
        func.docstring = griffe.Docstring(value, lineno=doc.lineno if doc else func.lineno, endlineno=doc.endlineno if doc else func.lineno,
                                          parent=func, parser=doc.parser if doc else None, parser_options=doc.parser_options if doc else None)
