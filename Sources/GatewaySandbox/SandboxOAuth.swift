import Foundation
import GatewayCore
import GatewayCrypto

/// OAuth 2.0 authorization-code flow with PKCE (Garmin: required, S256 only; Wahoo:
/// optional) and refresh-token rotation.
extension Sandbox {
    /// `GET authorize`: auto-approves and redirects back with a code, unless
    /// `sandbox_deny=1`. `sandbox_user=<id>` picks the fake account.
    func authorize(_ provider: SandboxProvider, _ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        let query = request.query
        // Without a known client and a redirect URI there is nowhere safe to redirect (RFC 6749 §4.1.2.1).
        guard query["client_id"] == options.client(provider).id else {
            throw SandboxReject(.text(400, "invalid_client: unknown client_id\n"))
        }
        guard let redirectURI = query["redirect_uri"],
            redirectURI.hasPrefix("http://") || redirectURI.hasPrefix("https://")
        else {
            throw SandboxReject(.text(400, "invalid_request: redirect_uri missing or not an http(s) URL\n"))
        }
        let state = query["state"]
        func back(_ parameters: [(String, String)]) -> SandboxResponse {
            var all = parameters
            if let state { all.append(("state", state)) }
            let joined = all.map { "\($0.0)=\(FormDecoding.encodeComponent($0.1))" }.joined(separator: "&")
            return .redirect(redirectURI + (redirectURI.contains("?") ? "&" : "?") + joined)
        }
        guard query["response_type"] == "code" else {
            return back([("error", "unsupported_response_type")])
        }
        let challenge = query["code_challenge"].flatMap { $0.isEmpty ? nil : $0 }
        if provider == .garmin || challenge != nil {
            guard let challenge, challenge.count == 43, query["code_challenge_method"] == "S256" else {
                return back([
                    ("error", "invalid_request"),
                    ("error_description", "code_challenge (43 chars) with code_challenge_method=S256 required"),
                ])
            }
        }
        if query["sandbox_deny"] == "1" {
            return back([("error", "access_denied")])
        }
        let userID: String
        if let chosen = query["sandbox_user"], !chosen.isEmpty {
            if provider == .wahoo, Int64(chosen) == nil {
                throw SandboxReject(.text(400, "sandbox_user must be a number for wahoo\n"))
            }
            userID = chosen
        } else if provider == .garmin {
            userID = UUID().uuidString.lowercased()
        } else {
            userID = String(nextWahooUserID)
            nextWahooUserID += 1
        }
        let account = user(provider, userID)
        account.registered = true
        let code = Base64URL.random()
        let scope =
            provider == .garmin
            ? ProviderFacts.garminScope
            : (query["scope"] ?? "user_read workouts_read workouts_write plans_read plans_write")
        codes[code] = AuthorizationCode(
            provider: provider, clientID: options.client(provider).id, redirectURI: redirectURI,
            codeChallenge: challenge, userID: userID, scope: scope, expiresAt: nowSeconds() + ProviderFacts.codeLifetime
        )
        logger.debug("sandbox authorize", metadata: ["provider": "\(provider.rawValue)", "user": "\(userID)"])
        return back([("code", code)])
    }

    /// `POST token`: `authorization_code` and `refresh_token` grants, form-encoded.
    func token(_ provider: SandboxProvider, _ request: SandboxRequest) throws(SandboxReject) -> SandboxResponse {
        guard request.isForm else {
            throw SandboxReject(
                .oauthError(400, "invalid_request", "body must be application/x-www-form-urlencoded"))
        }
        let form = request.form
        let client = options.client(provider)
        var clientID = form["client_id"]
        var clientSecret = form["client_secret"]
        if let (id, secret) = request.basicCredentials {
            clientID = clientID ?? id
            clientSecret = clientSecret ?? secret
        }
        guard clientID == client.id, clientSecret == client.secret else {
            counters["invalidClient", default: 0] += 1
            throw SandboxReject(.oauthError(401, "invalid_client", "unknown client or wrong client_secret"))
        }
        let now = nowSeconds()
        switch form["grant_type"] {
        case "authorization_code":
            let code = form["code"] ?? ""
            // Single use: a code is gone once presented, whatever the outcome.
            guard let stored = codes.removeValue(forKey: code), stored.provider == provider,
                stored.clientID == client.id
            else { throw invalidGrant("unknown or already used authorization code") }
            guard now < stored.expiresAt else { throw invalidGrant("authorization code expired") }
            guard form["redirect_uri"] == stored.redirectURI else {
                throw invalidGrant("redirect_uri does not match the authorization request")
            }
            if let challenge = stored.codeChallenge {
                guard let verifier = form["code_verifier"], (43...128).contains(verifier.count) else {
                    throw invalidGrant("code_verifier missing or not 43-128 characters")
                }
                guard Base64URL.encode(SHA256.hash(verifier)) == challenge else {
                    throw invalidGrant("code_verifier does not match code_challenge (S256)")
                }
            }
            let account = user(provider, stored.userID)
            if provider == .wahoo, account.liveTokens.count >= ProviderFacts.wahooTokenCap {
                counters["tooManyTokens", default: 0] += 1
                throw SandboxReject(
                    .oauthError(
                        400, "too_many_tokens",
                        "user already has \(ProviderFacts.wahooTokenCap) unrevoked tokens for this application"))
            }
            account.registered = true
            return issue(provider, account, clientID: client.id, scope: stored.scope, now: now)
        case "refresh_token":
            let token = form["refresh_token"] ?? ""
            guard let pair = refreshTokens[token], pair.provider == provider, pair.clientID == client.id,
                let account = users[provider]?[pair.userID]
            else { throw invalidGrant("unknown refresh token") }
            guard pair.refreshValid(now: now) else { throw invalidGrant("refresh token revoked, used or expired") }
            if account.failNextRefresh {
                account.failNextRefresh = false
                pair.revoke()
                throw invalidGrant("refresh token revoked (scripted)")
            }
            // Rotation: the presented refresh token dies. Wahoo also kills the old access token.
            if provider == .wahoo { pair.revoke() } else { pair.refreshRevoked = true }
            return issue(provider, account, clientID: client.id, scope: pair.scope, now: now)
        default:
            throw SandboxReject(
                .oauthError(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"))
        }
    }

    private func invalidGrant(_ why: String) -> SandboxReject {
        counters["invalidGrant", default: 0] += 1
        return SandboxReject(.oauthError(400, "invalid_grant", why))
    }

    private func issue(
        _ provider: SandboxProvider, _ account: SandboxUser, clientID: String, scope: String, now: Double
    ) -> SandboxResponse {
        let garmin = provider == .garmin
        let pair = TokenPair(
            provider: provider, userID: account.id, clientID: clientID, scope: scope, now: now,
            accessLifetime: garmin ? ProviderFacts.garminAccessLifetime : ProviderFacts.wahooAccessLifetime,
            refreshLifetime: garmin ? ProviderFacts.garminRefreshLifetime : nil)
        account.tokens.append(pair)
        accessTokens[pair.accessToken] = pair
        refreshTokens[pair.refreshToken] = pair
        if garmin {
            return .json(
                200,
                [
                    "access_token": .string(pair.accessToken), "token_type": "bearer",
                    "expires_in": .int(Int64(ProviderFacts.garminAccessLifetime)),
                    "refresh_token": .string(pair.refreshToken),
                    "refresh_token_expires_in": .int(Int64(ProviderFacts.garminRefreshLifetime)),
                    "scope": .string(scope),
                ], headers: [("Cache-Control", "no-store")])
        }
        return .json(
            200,
            [
                "access_token": .string(pair.accessToken), "token_type": "Bearer",
                "expires_in": .int(Int64(ProviderFacts.wahooAccessLifetime)),
                "refresh_token": .string(pair.refreshToken), "scope": .string(scope),
                "created_at": .int(Int64(now)),
            ], headers: [("Cache-Control", "no-store")])
    }
}
