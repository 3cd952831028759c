"""Prompt templates: H-CLIP/CAT-Seg's single template and the ViLD set (Gu et al., ICLR 2022)."""
SINGLE = ("A photo of a {} in the scene.",)

VILD = (
    "a photo of a {}.",
    "This is a photo of a {}",
    "There is a {} in the scene",
    "There is the {} in the scene",
    "a photo of a {} in the scene",
    "a photo of a small {}.",
    "a photo of a medium {}.",
    "a photo of a large {}.",
    "This is a photo of a small {}.",
    "This is a photo of a medium {}.",
    "This is a photo of a large {}.",
    "There is a small {} in the scene.",
    "There is a medium {} in the scene.",
    "There is a large {} in the scene.",
)

TEMPLATE_SETS = {"single": SINGLE, "vild": VILD}


def resolve_templates(templates):
    if isinstance(templates, str):
        if templates in TEMPLATE_SETS:
            return TEMPLATE_SETS[templates]
        if "{}" in templates:
            return (templates,)
        raise ValueError(f"templates: expected 'single', 'vild', a string with '{{}}' or a list, got {templates!r}")
    out = tuple(templates)
    if not out or not all("{}" in t for t in out):
        raise ValueError("templates: every template must contain '{}' for the class name")
    return out
