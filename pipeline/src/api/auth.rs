//! Authorization inside the functions, behind API Gateway's JWT authorizer: defense in depth.
//!
//! The gateway refuses a request without a valid token (401) or without the route's scope
//! (403) before any function runs. The functions check again, from the authorizer context the
//! gateway hands them, so that a route deployed without its authorizer (a template edit, a
//! console change, a second API pointed at the same function) fails closed: a scoped route
//! whose request carries no JWT context, or not the scope, is a 403 before any queue or store
//! call.

use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt as _};

use super::{Access, ApiError};

/// The OAuth scopes of this API, as the Cognito resource server `messages` defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Read,
    Write,
    /// Operations on the pipeline itself (the local runner's `/_local/` endpoints).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Write, Scope::Admin];

    /// The scope as tokens carry it: `<resource server>/<scope>`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Read => "messages/read",
            Self::Write => "messages/write",
            Self::Admin => "messages/admin",
        }
    }
}

/// What the gateway's authorizer established about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The app client the token was issued to (`client_id` claim), for logs and metrics.
    pub client_id: Option<String>,
    pub scopes: Vec<String>,
}

impl Caller {
    /// The JWT authorizer context of an API Gateway v2 request; `None` when there is none.
    pub fn of(request: &Request) -> Option<Self> {
        let Some(RequestContext::ApiGatewayV2(context)) = request.request_context_ref() else {
            return None;
        };
        let jwt = context.authorizer.as_ref()?.jwt.as_ref()?;
        // API Gateway lists the scopes it checked; the `scope` claim holds them all, and is
        // what a route without scopes of its own still gets.
        let mut scopes: Vec<String> = jwt.scopes.clone().unwrap_or_default();
        if let Some(claim) = jwt.claims.get("scope") {
            scopes.extend(claim.split_whitespace().map(str::to_owned));
        }
        Some(Self {
            client_id: jwt.claims.get("client_id").cloned(),
            scopes,
        })
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.name())
    }

    /// A caller holding `scopes`, as a token of app client `client_id` would make it.
    pub fn with_scopes(client_id: &str, scopes: &[Scope]) -> Self {
        Self {
            client_id: Some(client_id.to_owned()),
            scopes: scopes.iter().map(|s| s.name().to_owned()).collect(),
        }
    }

    /// The request as API Gateway hands it on once its JWT authorizer accepted this caller's
    /// token: the claims `client_id` and `scope` in the request context. The local runner
    /// authenticates its own tokens and passes requests on like this.
    pub fn attach_to(&self, request: Request) -> Request {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims.insert("scope".into(), self.scopes.join(" "));
        if let Some(client_id) = &self.client_id {
            jwt.claims.insert("client_id".into(), client_id.clone());
        }
        let mut authorizer = ApiGatewayRequestAuthorizer::default();
        authorizer.jwt = Some(jwt);
        let mut context = ApiGatewayV2httpRequestContext::default();
        context.authorizer = Some(authorizer);
        request.with_request_context(RequestContext::ApiGatewayV2(context))
    }
}

/// Refuses a request unless the gateway's authorizer established what `access` needs.
pub fn authorize(request: &Request, access: Access) -> Result<(), ApiError> {
    let scope = match access {
        Access::Public => return Ok(()),
        Access::Authenticated if Caller::of(request).is_some() => return Ok(()),
        Access::Authenticated => {
            return Err(ApiError::Forbidden {
                reason: "this path needs a valid token and the request carries no authorizer \
                         context (is the route deployed without its authorizer?)"
                    .into(),
            })
        }
        Access::Scoped(scope) => scope,
    };
    match Caller::of(request) {
        Some(caller) if caller.has(scope) => Ok(()),
        Some(_) => Err(ApiError::Forbidden {
            reason: format!("the token lacks the scope {}", scope.name()),
        }),
        None => Err(ApiError::Forbidden {
            reason: format!(
                "this route needs a token with the scope {} and the request carries no \
                 authorizer context (is the route deployed without its authorizer?)",
                scope.name()
            ),
        }),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::Scope;

    /// A request as API Gateway hands it on after its JWT authorizer accepted a token with
    /// `scopes`.
    pub fn with_scopes(request: Request, scopes: &[Scope]) -> Request {
        Caller::with_scopes("test-client", scopes).attach_to(request)
    }

    /// A request with a JWT authorizer context: the token's `scope` claim, and the scopes
    /// the gateway lists as checked.
    fn with_jwt(request: Request, scope_claim: &str, listed: Option<Vec<String>>) -> Request {
        let request = Caller {
            client_id: None,
            scopes: vec![scope_claim.to_owned()],
        }
        .attach_to(request);
        let Some(RequestContext::ApiGatewayV2(mut context)) =
            request.request_context_ref().cloned()
        else {
            unreachable!("attach_to sets an API Gateway v2 context")
        };
        if let Some(jwt) = context.authorizer.as_mut().and_then(|a| a.jwt.as_mut()) {
            jwt.scopes = listed;
        }
        request.with_request_context(RequestContext::ApiGatewayV2(context))
    }

    #[test]
    fn a_public_route_needs_nothing() {
        assert!(authorize(&Request::default(), Access::Public).is_ok());
    }

    #[test]
    fn a_scoped_route_without_authorizer_context_is_forbidden() {
        let error = authorize(&Request::default(), Access::Scoped(Scope::Read)).unwrap_err();
        assert_eq!(error.status(), 403);
        assert!(error.to_string().contains("messages/read"), "{error}");
    }

    #[test]
    fn a_token_without_the_scope_is_forbidden_and_with_it_allowed() {
        let reader = with_scopes(Request::default(), &[Scope::Read]);
        assert!(authorize(&reader, Access::Scoped(Scope::Read)).is_ok());
        let error = authorize(&reader, Access::Scoped(Scope::Write)).unwrap_err();
        assert_eq!(error.status(), 403);
        assert!(error.to_string().contains("messages/write"), "{error}");
    }

    #[test]
    fn a_scope_name_inside_another_is_not_the_scope() {
        let request = with_jwt(
            Request::default(),
            "messages/writer other/messages/write",
            None,
        );
        assert!(authorize(&request, Access::Scoped(Scope::Write)).is_err());
    }

    #[test]
    fn the_scopes_api_gateway_lists_count_too() {
        let request = with_jwt(Request::default(), "", Some(vec!["messages/read".into()]));
        assert!(authorize(&request, Access::Scoped(Scope::Read)).is_ok());
    }
}
