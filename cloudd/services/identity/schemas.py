"""Request bodies of the identity API (pydantic)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Name = Field(min_length=1, max_length=255)


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class DomainRef(Body):
    id: str | None = None
    name: str | None = None


class UserRef(Body):
    id: str | None = None
    name: str | None = None
    domain: DomainRef | None = None
    password: str | None = None


class PasswordMethod(Body):
    user: UserRef


class TokenMethod(Body):
    id: str


class AppCredMethod(Body):
    id: str | None = None
    name: str | None = None
    secret: str
    user: UserRef | None = None


class Identity(Body):
    methods: list[Literal["password", "token", "application_credential"]] = \
        Field(min_length=1)
    password: PasswordMethod | None = None
    token: TokenMethod | None = None
    application_credential: AppCredMethod | None = None


class ProjectRef(Body):
    id: str | None = None
    name: str | None = None
    domain: DomainRef | None = None


class SystemRef(Body):
    all: bool = False


class ScopeRef(Body):
    project: ProjectRef | None = None
    domain: DomainRef | None = None
    system: SystemRef | None = None


class Auth(Body):
    identity: Identity
    scope: ScopeRef | Literal["unscoped"] | None = None


class AuthRequest(Body):
    auth: Auth


class ProjectCreate(Body):
    name: str = Field(min_length=1, max_length=64)
    domain_id: str | None = None
    parent_id: str | None = None
    description: str | None = ""
    enabled: bool = True
    is_domain: bool = False
    tags: list[str] = []


class ProjectUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=64)
    description: str | None = None
    enabled: bool | None = None
    tags: list[str] | None = None


class UserCreate(Body):
    name: str = Name
    domain_id: str | None = None
    password: str | None = None
    enabled: bool = True
    default_project_id: str | None = None
    description: str | None = ""
    email: str | None = None


class UserUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    password: str | None = None
    enabled: bool | None = None
    default_project_id: str | None = None
    description: str | None = None
    email: str | None = None


class PasswordChange(Body):
    password: str
    original_password: str


class RoleCreate(Body):
    name: str = Name
    domain_id: str | None = None
    description: str | None = ""


class RoleUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    description: str | None = None


class RoleRef(Body):
    id: str | None = None
    name: str | None = None


class AppCredCreate(Body):
    name: str = Name
    description: str | None = ""
    secret: str | None = None
    expires_at: str | None = None
    roles: list[RoleRef] | None = None
    unrestricted: bool = False
    access_rules: list[dict] | None = None
