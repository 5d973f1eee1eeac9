"""Griffe extension for the API reference (tools/make_docs.py): a class's undocumented instance attributes
(`self.teacher = teacher` in `__init__`) are implementation detail, not API, and are left out of its page."""
import griffe


class HideUndocumentedInstanceAttributes(griffe.Extension):
    def on_class_members(self, *, cls: griffe.Class, **kwargs) -> None:
        for name, member in list(cls.members.items()):
            if (not member.is_alias and member.is_attribute and not member.docstring
                    and 'instance-attribute' in member.labels):
                cls.del_member(name)
