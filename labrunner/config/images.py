"""lab.yaml's `images:` section, and the recipe.yaml each image folder holds."""

import dataclasses
from pathlib import Path
from typing import Dict, List

from . import builtin
from .schema import REQUIRED, Ctx, load_yaml, mapping, path_in, str_list


@dataclasses.dataclass(frozen=True)
class Image:
    name: str
    recipe: Path


def image(root: Path):
    def check(ctx: Ctx, name: str) -> Image:
        f = mapping(ctx, {"recipe": (path_in(root, builtin.IMAGES), REQUIRED)})
        if not (f["recipe"] / "recipe.yaml").is_file():
            raise ctx.error(f"{f['recipe']} has no recipe.yaml", "recipe")
        return Image(name=name, recipe=f["recipe"])
    return check


def load_recipe(path: Path) -> Dict[str, List[str]]:
    """An image recipe.yaml: host binaries to copy (with their libraries) and kernel modules to load."""
    data = load_yaml(path)
    f = mapping(Ctx(path, "", data, 1), {
        "binaries": (str_list, REQUIRED),
        "modules": (str_list, ()),
    })
    return {"binaries": list(f["binaries"]), "modules": list(f["modules"])}
