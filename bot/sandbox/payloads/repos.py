"""Git data over REST: commits, diffs, refs, contents and branches."""

from __future__ import annotations

import base64
from datetime import datetime

from bot.sandbox.clock import iso
from bot.sandbox.git import CommitInfo, FileChange
from bot.sandbox.payloads.common import Json, Urls
from bot.sandbox.state import (
    Repo,
    node_id,
)


def simple_commit(info: CommitInfo) -> Json:
    return {
        "id": info.sha,
        "tree_id": info.tree,
        "message": info.message,
        "timestamp": iso(info.committer_date),
        "author": {"name": info.author.name, "email": info.author.email},
        "committer": {"name": info.committer.name, "email": info.committer.email},
    }


def unknown_commit(sha: str) -> Json:
    return {
        "id": sha,
        "tree_id": sha,
        "message": "",
        "timestamp": "1970-01-01T00:00:00Z",
        "author": None,
        "committer": None,
    }


def _git_user(who_name: str, email: str, when: datetime) -> Json:
    return {"name": who_name, "email": email, "date": iso(when)}


def commit(u: Urls, repo: Repo, info: CommitInfo, *, files: list[FileChange] | None = None) -> Json:
    """A commit as GET /repos/{o}/{r}/commits/{ref} returns it."""
    api = f"{u.repo(repo)}/commits/{info.sha}"
    out: Json = {
        "url": api,
        "sha": info.sha,
        "node_id": node_id("Commit", int(info.sha[:7], 16)),
        "html_url": f"{u.repo_html(repo)}/commit/{info.sha}",
        "comments_url": f"{api}/comments",
        "commit": {
            "url": f"{u.repo(repo)}/git/commits/{info.sha}",
            "author": _git_user(info.author.name, info.author.email, info.author_date),
            "committer": _git_user(info.committer.name, info.committer.email, info.committer_date),
            "message": info.message,
            "comment_count": 0,
            "tree": {"sha": info.tree, "url": f"{u.repo(repo)}/git/trees/{info.tree}"},
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
                "verified_at": None,
            },
        },
        "author": None,
        "committer": None,
        "parents": [
            {"sha": p, "url": f"{u.repo(repo)}/commits/{p}", "html_url": f"{u.repo_html(repo)}/commit/{p}"}
            for p in info.parents
        ],
    }
    if files is not None:
        out["files"] = [diff_entry(u, repo, info.sha, f) for f in files]
        adds = sum(f.additions for f in files)
        dels = sum(f.deletions for f in files)
        out["stats"] = {"additions": adds, "deletions": dels, "total": adds + dels}
    return out


def diff_entry(u: Urls, repo: Repo, ref: str, f: FileChange) -> Json:
    out: Json = {
        "sha": f.sha,
        "filename": f.filename,
        "status": f.status,
        "additions": f.additions,
        "deletions": f.deletions,
        "changes": f.additions + f.deletions,
        "blob_url": f"{u.repo_html(repo)}/blob/{ref}/{f.filename}",
        "raw_url": f"{u.repo_html(repo)}/raw/{ref}/{f.filename}",
        "contents_url": f"{u.repo(repo)}/contents/{f.filename}?ref={ref}",
    }
    if f.patch is not None:
        out["patch"] = f.patch
    if f.previous_filename is not None:
        out["previous_filename"] = f.previous_filename
    return out


def git_ref(u: Urls, repo: Repo, ref: str, sha: str) -> Json:
    return {
        "ref": ref,
        "node_id": node_id("Ref", abs(hash((repo.id, ref))) % 10**9),
        "url": f"{u.repo(repo)}/git/{ref}",
        "object": {"sha": sha, "type": "commit", "url": f"{u.repo(repo)}/git/commits/{sha}"},
    }


def base64_lines(data: bytes) -> str:
    """File content as the contents API encodes it: base64 in lines of 60 characters."""
    encoded = base64.b64encode(data).decode()
    return "".join(encoded[i : i + 60] + "\n" for i in range(0, len(encoded), 60))


def content_links(u: Urls, repo: Repo, path: str, sha: str, kind: str, ref: str) -> tuple[str, Json]:
    self_url = f"{u.repo(repo)}/contents/{path}?ref={ref}"
    git_url = f"{u.repo(repo)}/git/{'trees' if kind == 'dir' else 'blobs'}/{sha}"
    html_url = f"{u.repo_html(repo)}/{'tree' if kind == 'dir' else 'blob'}/{ref}/{path}"
    return self_url, {"self": self_url, "git": git_url, "html": html_url}


def content_entry(u: Urls, repo: Repo, path: str, sha: str, kind: str, size: int, ref: str) -> Json:
    self_url, links = content_links(u, repo, path, sha, kind, ref)
    return {
        "type": kind,
        "size": size,
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "sha": sha,
        "url": self_url,
        "git_url": links["git"],
        "html_url": links["html"],
        "download_url": f"{u.web}/{repo.full_name}/raw/{ref}/{path}" if kind == "file" else None,
        "_links": links,
    }


def short_branch(u: Urls, repo: Repo, name: str, sha: str, protected: bool = False) -> Json:
    return {"name": name, "commit": {"sha": sha, "url": f"{u.repo(repo)}/commits/{sha}"}, "protected": protected}


def branch(u: Urls, repo: Repo, name: str, info: CommitInfo) -> Json:
    return {
        "name": name,
        "commit": commit(u, repo, info),
        "_links": {"self": f"{u.repo(repo)}/branches/{name}", "html": f"{u.repo_html(repo)}/tree/{name}"},
        "protected": False,
        "protection": {
            "enabled": False,
            "required_status_checks": {"enforcement_level": "off", "contexts": [], "checks": []},
        },
        "protection_url": f"{u.repo(repo)}/branches/{name}/protection",
    }
