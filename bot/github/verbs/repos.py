"""Repositories: the App's installation on one, its metadata, its files, a person's permission on it."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import quote

from bot.github import _wire
from bot.github.errors import GitHubError, NotFound
from bot.github.models import FileContent, Permission, Repository
from bot.github.transport import GitHubTransport, seg


class RepoVerbs(GitHubTransport):
    """Repositories: where the App is installed, a repository, its files, a person's permission there."""

    async def get_installation_for_repo(self, owner: str, repo: str) -> int:
        found = await self.request(None, "GET", f"/repos/{seg(owner)}/{seg(repo)}/installation", model=_wire.Id)
        return found.id

    async def get_repository(self, installation_id: int, owner: str, repo: str) -> Repository:
        found = await self.request(installation_id, "GET", f"/repos/{seg(owner)}/{seg(repo)}", model=_wire.Repo)
        return found.to_domain()

    async def get_file(
        self, installation_id: int, owner: str, repo: str, path: str, ref: str | None = None
    ) -> FileContent | None:
        base = f"/repos/{seg(owner)}/{seg(repo)}"
        url = f"{base}/contents/{quote(path.strip('/'), safe='/')}"
        try:
            response, data = await self._fetch(installation_id, "GET", url, params={"ref": ref} if ref else None)
        except NotFound:
            return None
        if not isinstance(data, dict):
            return None  # a directory listing
        content = self._parse(_wire.Content, data, response)
        if content.type != "file":
            return None  # a symlink or a submodule
        encoded, encoding = content.content, content.encoding
        if encoding == "none" or encoded is None:
            # Files over 1 MB come without content; the blob API serves them up to 100 MB.
            blob = await self.request(installation_id, "GET", f"{base}/git/blobs/{seg(content.sha)}", model=_wire.Blob)
            encoded, encoding = blob.content, blob.encoding
        if encoding == "base64":
            try:
                raw = base64.b64decode(encoded)
            except (binascii.Error, ValueError):
                raise GitHubError("file content is not valid base64", method="GET", path=url) from None
            text = raw.decode("utf-8", errors="replace")
        else:
            text = encoded or ""
        return FileContent(text, content.sha)

    async def get_collaborator_permission(
        self, installation_id: int, owner: str, repo: str, username: str
    ) -> Permission:
        url = f"/repos/{seg(owner)}/{seg(repo)}/collaborators/{seg(username)}/permission"
        try:
            found = await self.request(installation_id, "GET", url, model=_wire.CollaboratorPermission)
        except NotFound:
            return "none"
        return found.effective()

