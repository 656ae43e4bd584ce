import GatewayCore
import GatewayCrypto
import GatewayProviders
import GatewayStore

/// Revocation at the provider with tokens already taken out of the database, for
/// `gatewayd connections revoke`: the CLI revokes locally first (so the daemon stops
/// using the tokens at once), then calls this with the sealed tokens it read in the
/// same transaction. Best effort, like a disconnect; the call is not counted by the
/// daemon's rate gate (one or two calls).
public enum ProviderRevocation {
    public enum Outcome: Sendable, Equatable, CustomStringConvertible {
        case revoked
        /// The access token was refused (expired): refreshed once, then revoked. The
        /// new tokens are not stored: the connection is already revoked here.
        case revokedAfterRefresh
        case failed(String)

        public var description: String {
            switch self {
            case .revoked: return "revoked"
            case .revokedAfterRefresh: return "revoked (after a token refresh)"
            case .failed(let why): return "failed: \(why)"
            }
        }
    }

    public static func revoke(
        athleteID: String, provider: ProviderKind, tokens: SealedTokens, box: TokenBox, oauth: ProviderOAuth
    ) -> Outcome {
        let access: String
        do {
            access = try box.open(tokens.access, context: TokenManager.context(athleteID, provider, "access"))
        } catch {
            return .failed("the stored access token does not open with the configured token key (\(error))")
        }
        do throws(ProviderCallError) {
            try oauth.revoke(accessToken: access)
            return .revoked
        } catch .unauthorized {
            guard let sealedRefresh = tokens.refresh,
                let refresh = try? box.open(
                    sealedRefresh, context: TokenManager.context(athleteID, provider, "refresh"))
            else { return .failed("the access token was refused and no refresh token is stored") }
            do throws(ProviderCallError) {
                let renewed = try oauth.refresh(refreshToken: refresh)
                try oauth.revoke(accessToken: renewed.accessToken)
                return .revokedAfterRefresh
            } catch {
                return .failed("\(error)")
            }
        } catch {
            return .failed("\(error)")
        }
    }
}
