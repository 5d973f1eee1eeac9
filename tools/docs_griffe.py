"""Griffe extensions for the API reference (tools/make_docs.py).

- `HideUndocumentedInstanceAttributes`: a class's undocumented instance attributes (`self.teacher = teacher` in
  `__init__`) are implementation detail, not API, and are left out of its page.
- `PatchedMethods`: a notebook may define a class over several cells, adding methods with `@patch`
  (`def fit(self: Trainer, ...)` at module level, as fastcore's decorator). Griffe reads the source statically and
  would list them as module functions; they are moved into their class, where they live at run time."""
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
