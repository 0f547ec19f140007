"""The policy the copy serves is a published one, and the notice shows its version."""

from __future__ import annotations

from zimage.audit.model import Promise, Result
from zimage.audit.releases import Releases
from zimage.audit.served_policy import ServedPolicy, policy_digest, stated_version

PUBLISHED = Promise(
    "policy.published",
    "The policy text the copy shows is a published release's, word for word",
    "PRIVACY.md §11, §12",
)
VERSION = Promise(
    "policy.version",
    "The privacy notice shows the version of the policy text the copy serves",
    "PRIVACY.md §12",
)
PROMISES = (PUBLISHED, VERSION)


def check_policy(policy: ServedPolicy, releases: Releases) -> list[Result]:
    return [_published(policy, releases), _version(policy)]


def _published(policy: ServedPolicy, releases: Releases) -> Result:
    if not policy.texts:
        return PUBLISHED.not_checked("the copy serves no policy text in its page configuration")
    found, unknown, edited = [], [], []
    for language, text in sorted(policy.texts.items()):
        digest = policy_digest(text)
        release = releases.version_of(language, digest)
        stated = stated_version(text)
        if release is not None:
            found.append(f"{language} = release {release}")
        elif stated in releases.digests:
            edited.append(
                f"{language} sha256 {digest} differs from every published text of {stated}"
            )
        else:
            unknown.append(f"{language} sha256 {digest} (version {stated})")
    if edited:
        return PUBLISHED.broken("; ".join(edited + found))
    if unknown:
        return PUBLISHED.not_checked(
            "a version this audit does not know (a newer release?): compare the digest with "
            "the release's PRIVACY.md (sha256sum PRIVACY.md): " + "; ".join(unknown + found)
        )
    return PUBLISHED.kept("; ".join(found))


def _version(policy: ServedPolicy) -> Result:
    if policy.banner_version is None:
        return VERSION.not_checked("the privacy notice shows no version")
    if not policy.texts:
        return VERSION.not_checked("the copy serves no policy text to compare with")
    stated = {language: stated_version(text) for language, text in sorted(policy.texts.items())}
    evidence = f"notice: {policy.banner_version}; " + ", ".join(
        f"{language} text: {version}" for language, version in stated.items()
    )
    return VERSION.judged(set(stated.values()) == {policy.banner_version}, evidence)
