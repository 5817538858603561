"""The catalog: every group and view defined in a repository, and the resolution of feature references.

A reference is `"group:feature"`; a bare `"feature"` resolves when exactly one
group has it. Resolution happens once per request shape and is cached, so the
online path never parses references per call.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from feature_platform.definitions.concepts import FeatureGroup, FeatureView, OnDemandTransformation
from feature_platform.errors import ArgumentError, DefinitionError, FeatureReferenceError


@dataclass(frozen=True)
class GroupSelection:
    """Features picked from one group, with the output column name of each."""

    group: FeatureGroup
    features: tuple[str, ...]
    output_names: tuple[str, ...]


@dataclass(frozen=True)
class ResolvedFeatures:
    """What a retrieval reads: per group the features, plus the view's on-demand transformations."""

    selections: tuple[GroupSelection, ...]
    on_demand: tuple[OnDemandTransformation, ...] = ()

    @property
    def output_names(self) -> list[str]:
        names = [n for s in self.selections for n in s.output_names]
        return names + [f.name for t in self.on_demand for f in t.outputs]

    @property
    def join_keys(self) -> list[str]:
        keys: list[str] = []
        for selection in self.selections:
            keys += [k for k in selection.group.join_keys if k not in keys]
        return keys

    @property
    def request_inputs(self) -> list[str]:
        return list(dict.fromkeys(c for t in self.on_demand for c in t.request_inputs))


class Catalog:
    """Groups and views by name, checked for clashes once."""

    def __init__(self, groups: Sequence[FeatureGroup] = (), views: Sequence[FeatureView] = ()) -> None:
        self.groups: dict[str, FeatureGroup] = {}
        self.views: dict[str, FeatureView] = {}
        for group in groups:
            if not isinstance(group, FeatureGroup):
                raise DefinitionError(f"expected FeatureGroup, got {type(group).__name__}")
            if group.name in self.groups:
                raise DefinitionError(f"feature group '{group.name}' is defined twice")
            self.groups[group.name] = group
        self._by_feature: dict[str, list[str]] = {}
        for group in self.groups.values():
            for feature in group.feature_names:
                self._by_feature.setdefault(feature, []).append(group.name)
        for view in views:
            if not isinstance(view, FeatureView):
                raise DefinitionError(f"expected FeatureView, got {type(view).__name__}")
            if view.name in self.views:
                raise DefinitionError(f"feature view '{view.name}' is defined twice")
            self.views[view.name] = view
            self._check_view(view)
        self._cache: dict[object, ResolvedFeatures] = {}

    def group(self, name: str) -> FeatureGroup:
        try:
            return self.groups[name]
        except (KeyError, TypeError):
            raise FeatureReferenceError(
                f"unknown feature group '{name}'; known groups: {sorted(self.groups)}"
            ) from None

    def view(self, name: str) -> FeatureView:
        try:
            return self.views[name]
        except (KeyError, TypeError):  # TypeError: not a name at all (a list, a dict)
            raise FeatureReferenceError(f"unknown feature view '{name}'; known views: {sorted(self.views)}") from None

    def _check_view(self, view: FeatureView) -> None:
        """A view's references, and the names its on-demand transformations read and write, are unambiguous.

        Same-named features of two groups are allowed: a request names them with
        `full_feature_names=True`, and one without it is refused where the names are known.
        """
        where = f"feature view '{view.name}'"
        resolved = self._resolve(view.features, True, view.on_demand, where)
        sources: dict[str, list[str]] = {}
        for selection in resolved.selections:
            for feature in selection.features:
                sources.setdefault(feature, []).append(f"{selection.group.name}:{feature}")
        for transformation in view.on_demand:
            for name in transformation.inputs:
                if len(sources.get(name, [])) > 1:
                    raise DefinitionError(
                        f"{where}: on-demand '{transformation.name}' reads '{name}', which is ambiguous here: "
                        f"{sources[name]}; keep one of them in the view or rename a feature"
                    )
            for output in transformation.outputs:
                if output.name in sources:
                    raise DefinitionError(f"{where}: on-demand output '{output.name}' clashes with '{sources[output.name][0]}'")

    def needs_full_names(self, view: FeatureView | str) -> bool:
        """Whether the view's bare feature names clash, so it can only be read with `full_feature_names=True`."""
        definition = self.view(view if isinstance(view, str) else view.name)
        names = [self._parse(reference, "")[1] for reference in definition.features]
        return len(set(names)) != len(names)

    def resolve_for_listing(self, view: FeatureView | str) -> ResolvedFeatures:
        """A view resolved under the names a request can read it with: bare ones, or group__feature when they clash."""
        return self.resolve(view if isinstance(view, FeatureView) else self.view(view), self.needs_full_names(view))

    def resolve(self, features: "Sequence[str] | FeatureView | str", full_feature_names: bool = False) -> ResolvedFeatures:
        """Resolve references, a view, or a view's name into per-group selections (cached)."""
        if not isinstance(full_feature_names, bool):
            raise ArgumentError(f"full_feature_names must be True or False, got {type(full_feature_names).__name__}")
        if isinstance(features, FeatureView):
            key: object = ("view", features.name, full_feature_names)
        elif isinstance(features, str):
            key = (features, full_feature_names)
        elif isinstance(features, (list, tuple)) and all(isinstance(f, str) for f in features):
            key = (tuple(features), full_feature_names)
        else:
            raise FeatureReferenceError(
                f"features must be a list of references 'group:feature', a FeatureView or a view name, got {type(features).__name__}"
            )
        resolved = self._cache.get(key)
        if resolved is None:
            resolved = self._cache[key] = self._resolve_uncached(features, full_feature_names)
        return resolved

    def _resolve_uncached(self, features: "Sequence[str] | FeatureView | str", full_feature_names: bool) -> ResolvedFeatures:
        if isinstance(features, str):
            features = self.views[features] if features in self.views else (features,)
        if isinstance(features, FeatureView):
            view = self.views.get(features.name)
            if view is None:
                raise FeatureReferenceError(f"feature view '{features.name}' is not registered in this store")
            return self._resolve(view.features, full_feature_names, view.on_demand, f"feature view '{view.name}'")
        if not all(isinstance(f, str) for f in features):
            raise FeatureReferenceError(f"features must be references 'group:feature', a FeatureView or a view name, got {features!r}")
        return self._resolve(tuple(features), full_feature_names, (), "request")

    def _resolve(
        self,
        references: Sequence[str],
        full_feature_names: bool,
        on_demand: Sequence[OnDemandTransformation],
        where: str,
    ) -> ResolvedFeatures:
        if not references:
            raise FeatureReferenceError(f"{where}: no features requested")
        picked: dict[str, list[str]] = {}
        for reference in references:
            group_name, feature = self._parse(reference, where)
            if feature in picked.setdefault(group_name, []):
                raise FeatureReferenceError(f"{where}: '{group_name}:{feature}' is requested twice")
            picked[group_name].append(feature)
        selections = []
        seen: dict[str, str] = {}
        for group_name, names in picked.items():
            outputs = tuple(f"{group_name}__{n}" if full_feature_names else n for n in names)
            for feature, output in zip(names, outputs):
                if output in seen:
                    raise FeatureReferenceError(
                        f"{where}: output column '{output}' would come from both '{seen[output]}' and "
                        f"'{group_name}:{feature}'; pass full_feature_names=True to name them group__feature"
                    )
                seen[output] = f"{group_name}:{feature}"
            selections.append(GroupSelection(self.groups[group_name], tuple(names), outputs))
        _check_on_demand_inputs(on_demand, [f for s in selections for f in s.features], where)
        for transformation in on_demand:
            for output in transformation.outputs:
                if output.name in seen:
                    raise DefinitionError(
                        f"{where}: on-demand output '{output.name}' clashes with '{seen[output.name]}'"
                    )
                seen[output.name] = f"on-demand '{transformation.name}'"
        return ResolvedFeatures(tuple(selections), tuple(on_demand))

    def _parse(self, reference: str, where: str) -> tuple[str, str]:
        if not isinstance(reference, str) or not reference:
            raise FeatureReferenceError(f"{where}: feature reference {reference!r} is not a non-empty string")
        if ":" in reference:
            group_name, _, feature = reference.partition(":")
            group = self.groups.get(group_name)
            if group is None:
                raise FeatureReferenceError(
                    f"{where}: unknown feature group '{group_name}' in '{reference}'; known groups: {sorted(self.groups)}"
                )
            if feature not in group.feature_names:
                raise FeatureReferenceError(
                    f"{where}: feature group '{group_name}' has no feature '{feature}'; it has {group.feature_names}"
                )
            return group_name, feature
        candidates = self._by_feature.get(reference, [])
        if not candidates:
            raise FeatureReferenceError(f"{where}: unknown feature '{reference}': no group has it")
        if len(candidates) > 1:
            raise FeatureReferenceError(
                f"{where}: feature '{reference}' is ambiguous; it is in groups {sorted(candidates)}: "
                f"use one of {[f'{g}:{reference}' for g in sorted(candidates)]}"
            )
        return candidates[0], reference


def _check_on_demand_inputs(on_demand: Sequence[OnDemandTransformation], features: Sequence[str], where: str) -> None:
    """Declared inputs are retrieved features or earlier outputs; request inputs never shadow a feature."""
    available = set(features)
    for transformation in on_demand:
        unknown = [c for c in transformation.inputs if c not in available]
        if unknown:
            raise DefinitionError(
                f"{where}: on-demand transformation '{transformation.name}' takes input(s) {unknown} that are neither "
                f"features of the request nor outputs of an earlier transformation; available: {sorted(available)}"
            )
        shadowed = sorted(set(transformation.request_inputs) & available)
        if shadowed:
            raise DefinitionError(
                f"{where}: on-demand transformation '{transformation.name}' names request input(s) {shadowed} like "
                "retrieved features; rename the request input"
            )
        available.update(o.name for o in transformation.outputs)
