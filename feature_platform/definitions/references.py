"""The catalog: every group and view defined in a repository, and the resolution of feature references.

A reference is `"group:feature"`; a bare `"feature"` resolves when exactly one
group has it. Resolution happens once per request shape and is cached, so the
online path never parses references per call.
"""

from collections.abc import Callable, Mapping, Sequence
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
    """Groups (one or several versions each) and views by name, checked for clashes once.

    A reference `"group:feature"` reads the group version its view recorded when
    it was applied (`applied_view_versions`), else the latest defined version;
    `"group@2:feature"` pins version 2.
    """

    def __init__(
        self,
        groups: Sequence[FeatureGroup] = (),
        views: Sequence[FeatureView] = (),
        applied_view_versions: Callable[[], Mapping[str, Mapping[str, int]]] | None = None,
    ) -> None:
        self.versions: dict[str, dict[int, FeatureGroup]] = {}
        self.views: dict[str, FeatureView] = {}
        for group in groups:
            if not isinstance(group, FeatureGroup):
                raise DefinitionError(f"expected FeatureGroup, got {type(group).__name__}")
            defined = self.versions.setdefault(group.name, {})
            if group.version in defined:
                raise DefinitionError(f"feature group '{group.name}' version {group.version} is defined twice")
            defined[group.version] = group
        # The latest defined version of each group: what unpinned references and `group(name)` mean.
        self.groups: dict[str, FeatureGroup] = {n: v[max(v)] for n, v in self.versions.items()}
        self._by_feature: dict[str, list[str]] = {}
        for group in self.groups.values():
            for feature in group.feature_names:
                self._by_feature.setdefault(feature, []).append(group.name)
        self._applied_view_versions = applied_view_versions
        self._pins: Mapping[str, Mapping[str, int]] | None = None
        for view in views:
            if not isinstance(view, FeatureView):
                raise DefinitionError(f"expected FeatureView, got {type(view).__name__}")
            if view.name in self.views:
                raise DefinitionError(f"feature view '{view.name}' is defined twice")
            self.views[view.name] = view
            self._check_view(view)
        self._cache: dict[object, ResolvedFeatures] = {}

    def _check_view(self, view: FeatureView) -> None:
        """A view's references exist, and the names its on-demand transformations read and write are unambiguous.

        A reference without a pin must name a feature of some defined version (the
        version the view applied decides which is read). Same-named features of two
        groups are allowed: a request names them with `full_feature_names=True`, and
        one without it is refused where the names are known.
        """
        where = f"feature view '{view.name}'"
        for reference in view.features:
            group_name, version, feature = self._parse(reference, where, None, strict=False)
            if version is None and not any(feature in g.feature_names for g in self.versions[group_name].values()):
                raise FeatureReferenceError(
                    f"{where}: feature group '{group_name}' has no feature '{feature}' in any defined version; "
                    f"it has {self.groups[group_name].feature_names}"
                )
        try:
            resolved = self._resolve(view.features, True, view.on_demand, where, {})
        except FeatureReferenceError as error:
            if "has no feature" in str(error):  # a feature only in an older version: the applied pins decide
                return
            raise
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

    def latest_versions(self, view: FeatureView) -> dict[str, int]:
        """The group versions the view would read if it were applied afresh: its pins, else the latest defined."""
        return self.view_at(view, {})

    def view_at(self, view: FeatureView, versions: Mapping[str, int]) -> dict[str, int]:
        """The group versions the view reads with these versions for its unpinned references (an error if one cannot)."""
        resolved = self._resolve(view.features, True, view.on_demand, f"feature view '{view.name}'", versions)
        return {s.group.name: s.group.version for s in resolved.selections}

    def forget_applied(self) -> None:
        """Read the views' applied group versions afresh on the next resolve (after an apply changed them)."""
        self._pins = None
        self._cache.clear()

    def _view_pins(self, view_name: str) -> Mapping[str, int]:
        if self._applied_view_versions is None:
            return {}
        if self._pins is None:
            self._pins = self._applied_view_versions()
        return self._pins.get(view_name, {})

    def group(self, name: str, version: int | None = None) -> FeatureGroup:
        """A group by name: the latest defined version, or `version`."""
        defined = self.versions.get(name) if isinstance(name, str) else None
        if defined is None:
            raise FeatureReferenceError(f"unknown feature group '{name}'; known groups: {sorted(self.groups)}")
        if version is None:
            return self.groups[name]
        if version not in defined:
            raise FeatureReferenceError(f"feature group '{name}' has no version {version}; defined versions: {sorted(defined)}")
        return defined[version]

    def view(self, name: str) -> FeatureView:
        try:
            return self.views[name]
        except (KeyError, TypeError):  # TypeError: not a name at all (a list, a dict)
            raise FeatureReferenceError(f"unknown feature view '{name}'; known views: {sorted(self.views)}") from None

    def needs_full_names(self, view: FeatureView | str) -> bool:
        """Whether the view's bare feature names clash, so it can only be read with `full_feature_names=True`."""
        definition = self.view(view if isinstance(view, str) else view.name)
        names = [self._parse(reference, "", None, strict=False)[2] for reference in definition.features]
        return len(set(names)) != len(names)

    def resolve_for_listing(self, view: FeatureView | str) -> ResolvedFeatures:
        """A view resolved under the names a request can read it with: bare ones, or group__feature when they clash."""
        return self.resolve(view if isinstance(view, FeatureView) else self.view(view), self.needs_full_names(view))

    def resolve(
        self,
        features: "Sequence[str] | FeatureView | str",
        full_feature_names: bool = False,
        *,
        versions: Mapping[str, int] | None = None,
    ) -> ResolvedFeatures:
        """Resolve references, a view, or a view's name into per-group selections (cached).

        `versions` overrides which version of each group is read (a training manifest's record).
        """
        pinned = tuple(sorted((versions or {}).items()))
        if not isinstance(full_feature_names, bool):
            raise ArgumentError(f"full_feature_names must be True or False, got {type(full_feature_names).__name__}")
        if isinstance(features, FeatureView):
            key: object = ("view", features.name, full_feature_names, pinned)
        elif isinstance(features, str):
            key = (features, full_feature_names, pinned)
        elif isinstance(features, (list, tuple)) and all(isinstance(f, str) for f in features):
            key = (tuple(features), full_feature_names, pinned)
        else:
            raise FeatureReferenceError(
                f"features must be a list of references 'group:feature', a FeatureView or a view name, got {type(features).__name__}"
            )
        resolved = self._cache.get(key)
        if resolved is None:
            resolved = self._cache[key] = self._resolve_uncached(features, full_feature_names, versions)
        return resolved

    def _resolve_uncached(
        self, features: "Sequence[str] | FeatureView | str", full_feature_names: bool, versions: Mapping[str, int] | None
    ) -> ResolvedFeatures:
        if isinstance(features, str):
            features = self.views[features] if features in self.views else (features,)
        if isinstance(features, FeatureView):
            view = self.views.get(features.name)
            if view is None:
                raise FeatureReferenceError(f"feature view '{features.name}' is not registered in this store")
            pins = versions if versions is not None else self._view_pins(view.name)
            return self._resolve(view.features, full_feature_names, view.on_demand, f"feature view '{view.name}'", pins)
        if not all(isinstance(f, str) for f in features):
            raise FeatureReferenceError(f"features must be references 'group:feature', a FeatureView or a view name, got {features!r}")
        return self._resolve(tuple(features), full_feature_names, (), "request", versions or {})

    def _resolve(
        self,
        references: Sequence[str],
        full_feature_names: bool,
        on_demand: Sequence[OnDemandTransformation],
        where: str,
        pins: Mapping[str, int],
    ) -> ResolvedFeatures:
        if not references:
            raise FeatureReferenceError(f"{where}: no features requested")
        picked: dict[str, list[str]] = {}
        chosen: dict[str, FeatureGroup] = {}
        for reference in references:
            group_name, version, feature = self._parse(reference, where, pins)
            group = self._version_read(group_name, version, pins, where)
            if chosen.setdefault(group_name, group).version != group.version:
                raise FeatureReferenceError(
                    f"{where}: reads feature group '{group_name}' at versions {chosen[group_name].version} and "
                    f"{group.version}; a request reads one version of each group"
                )
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
            selections.append(GroupSelection(chosen[group_name], tuple(names), outputs))
        _check_on_demand_inputs(on_demand, [f for s in selections for f in s.features], where)
        for transformation in on_demand:
            for output in transformation.outputs:
                if output.name in seen:
                    raise DefinitionError(
                        f"{where}: on-demand output '{output.name}' clashes with '{seen[output.name]}'"
                    )
                seen[output.name] = f"on-demand '{transformation.name}'"
        return ResolvedFeatures(tuple(selections), tuple(on_demand))

    def _version_read(self, group_name: str, version: int | None, pins: Mapping[str, int], where: str) -> FeatureGroup:
        """The group version a reference reads: its pin, else the view's applied version, else the latest."""
        if version is None:
            version = pins.get(group_name, max(self.versions[group_name]))
        if version not in self.versions[group_name]:
            raise FeatureReferenceError(
                f"{where}: reads feature group '{group_name}' version {version}, which the repository does not define "
                f"(defined: {sorted(self.versions[group_name])}); define it beside the newer version, or bump the view's "
                "version and apply to move it"
            )
        return self.versions[group_name][version]

    def _parse(
        self, reference: str, where: str, pins: Mapping[str, int] | None, strict: bool = True
    ) -> tuple[str, int | None, str]:
        """(group, pinned version or None, feature) of a reference; `strict` checks the feature in the version read."""
        if not isinstance(reference, str) or not reference:
            raise FeatureReferenceError(f"{where}: feature reference {reference!r} is not a non-empty string")
        if ":" in reference:
            qualified, _, feature = reference.partition(":")
            group_name, _, pinned = qualified.partition("@")
            version = None
            if pinned:
                if not pinned.isdigit():
                    raise FeatureReferenceError(f"{where}: '{reference}': a pinned version is 'group@2:feature'")
                version = int(pinned)
            if group_name not in self.versions:
                raise FeatureReferenceError(
                    f"{where}: unknown feature group '{group_name}' in '{reference}'; known groups: {sorted(self.groups)}"
                )
            if version is not None and version not in self.versions[group_name]:
                raise FeatureReferenceError(
                    f"{where}: '{reference}' pins feature group '{group_name}' version {version}, which is not defined "
                    f"(defined: {sorted(self.versions[group_name])})"
                )
            if strict:
                read = version if version is not None else (pins or {}).get(group_name, max(self.versions[group_name]))
                group = self.versions[group_name].get(read)
                if group is not None and feature not in group.feature_names:
                    raise FeatureReferenceError(
                        f"{where}: feature group '{group_name}' (v{read}) has no feature '{feature}'; it has {group.feature_names}"
                    )
            return group_name, version, feature
        candidates = self._by_feature.get(reference, [])
        if not candidates:
            raise FeatureReferenceError(f"{where}: unknown feature '{reference}': no group has it")
        if len(candidates) > 1:
            raise FeatureReferenceError(
                f"{where}: feature '{reference}' is ambiguous; it is in groups {sorted(candidates)}: "
                f"use one of {[f'{g}:{reference}' for g in sorted(candidates)]}"
            )
        return candidates[0], None, reference


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
