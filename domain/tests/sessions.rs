//! Staff sessions against real storage: sign-in, the single refusal answer,
//! account locking, per-address throttling, idle and absolute expiry,
//! sign-out, CSRF tokens, the first-admin link and API key revocation.

use chrono::Duration;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use secrecy::{ExposeSecret, SecretString};

use heimdall_domain::access::accounts::{self, Role};
use heimdall_domain::access::sessions::{
    self, FirstAdminLink, LoginAttempt, LoginError, LoginThrottle, SetupError, ACCOUNT_LOCK,
    IDLE_TIMEOUT, MAX_ACCOUNT_FAILURES, MAX_ADDRESS_FAILURES,
};
use heimdall_domain::entities::{staff_audit, staff_session};
use heimdall_domain::testing::TestEnv;

const EMAIL: &str = "ops@example.com";
const PASSWORD: &str = "correct horse battery";

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_string())
}

async fn env_with_user() -> TestEnv {
    let env = TestEnv::new(&[]).await;
    accounts::create_user(&env.core, EMAIL, None, Role::Operator, &secret(PASSWORD))
        .await
        .unwrap();
    env
}

async fn try_login(
    env: &TestEnv,
    throttle: &LoginThrottle,
    email: &str,
    password: &str,
    ip: &str,
) -> Result<sessions::NewSession, LoginError> {
    let pw = secret(password);
    sessions::login(
        &env.core,
        throttle,
        LoginAttempt {
            email,
            password: &pw,
            ip: Some(ip),
            user_agent: Some("test"),
        },
    )
    .await
}

#[tokio::test]
async fn signs_in_and_stores_only_a_hash_of_the_token() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    let new = try_login(&env, &throttle, " OPS@example.com ", PASSWORD, "10.0.0.1")
        .await
        .unwrap();
    let token = new.token.expose_secret().to_string();
    assert_eq!(token.len(), 64);
    assert_eq!(new.session.user.role, Role::Operator);
    let rows = staff_session::Entity::find()
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_ne!(rows[0].id, token, "the token itself is never stored");
    assert_eq!(rows[0].id, sessions::hash_token(&token));
    assert_eq!(rows[0].ip.as_deref(), Some("10.0.0.1"));

    let found = sessions::authenticate(&env.core, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.user.email, EMAIL);
    assert!(found.csrf_matches(&new.session.csrf_token));
    assert!(!found.csrf_matches("nope"));
    assert!(!found.csrf_matches(""));
    // Not a token at all, or an unknown one.
    assert!(sessions::authenticate(&env.core, "garbage")
        .await
        .unwrap()
        .is_none());
    assert!(sessions::authenticate(&env.core, &"a".repeat(64))
        .await
        .unwrap()
        .is_none());
    // The sign-in is in the staff audit trail.
    let audit = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.eq("login"))
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(audit, 1);
}

#[tokio::test]
async fn every_refusal_reads_the_same() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    let wrong = try_login(&env, &throttle, EMAIL, "wrong password!!", "10.0.0.1")
        .await
        .unwrap_err();
    let unknown = try_login(&env, &throttle, "nobody@example.com", PASSWORD, "10.0.0.1")
        .await
        .unwrap_err();
    let malformed = try_login(&env, &throttle, "not an email", PASSWORD, "10.0.0.1")
        .await
        .unwrap_err();
    assert!(matches!(wrong, LoginError::Refused));
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(wrong.to_string(), malformed.to_string());
}

#[tokio::test]
async fn too_many_wrong_passwords_lock_the_account_for_a_while() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    for i in 0..MAX_ACCOUNT_FAILURES {
        // Different addresses: this is the per-account limit.
        let ip = format!("10.0.1.{i}");
        assert!(try_login(&env, &throttle, EMAIL, "wrong password!!", &ip)
            .await
            .is_err());
    }
    // Locked: even the right password is refused, with the same answer.
    let err = try_login(&env, &throttle, EMAIL, PASSWORD, "10.0.2.1")
        .await
        .unwrap_err();
    assert!(matches!(err, LoginError::Refused));
    env.clock.advance(ACCOUNT_LOCK + Duration::seconds(1));
    try_login(&env, &throttle, EMAIL, PASSWORD, "10.0.2.1")
        .await
        .expect("the lock ends");
}

#[tokio::test]
async fn a_noisy_address_is_refused_but_others_are_not() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    for i in 0..MAX_ADDRESS_FAILURES {
        // Unknown accounts: this is the per-address limit.
        let email = format!("guess{i}@example.com");
        assert!(try_login(&env, &throttle, &email, PASSWORD, "192.0.2.9")
            .await
            .is_err());
    }
    assert!(try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.9")
        .await
        .is_err());
    try_login(&env, &throttle, EMAIL, PASSWORD, "198.51.100.1")
        .await
        .expect("another address is not affected");
    env.clock
        .advance(sessions::ADDRESS_WINDOW + Duration::seconds(1));
    try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.9")
        .await
        .expect("the address window moves on");
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_the_absolute_limit() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    let token = try_login(&env, &throttle, EMAIL, PASSWORD, "10.0.0.1")
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_string();
    // Used every 6 hours: stays alive (the idle expiry slides)...
    for _ in 0..27 {
        env.clock.advance(Duration::hours(6));
        assert!(
            sessions::authenticate(&env.core, &token)
                .await
                .unwrap()
                .is_some(),
            "alive at {}",
            env.core.now()
        );
    }
    // ...but not past seven days from sign-in.
    env.clock.advance(Duration::hours(6));
    assert!(sessions::authenticate(&env.core, &token)
        .await
        .unwrap()
        .is_none());

    // Left alone for longer than the idle timeout: gone.
    let token = try_login(&env, &throttle, EMAIL, PASSWORD, "10.0.0.1")
        .await
        .unwrap()
        .token
        .expose_secret()
        .to_string();
    env.clock.advance(IDLE_TIMEOUT + Duration::seconds(1));
    assert!(sessions::authenticate(&env.core, &token)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn signing_out_ends_the_session() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    let new = try_login(&env, &throttle, EMAIL, PASSWORD, "10.0.0.1")
        .await
        .unwrap();
    let token = new.token.expose_secret().to_string();
    sessions::logout(&env.core, &new.session, Some("10.0.0.1"))
        .await
        .unwrap();
    assert!(sessions::authenticate(&env.core, &token)
        .await
        .unwrap()
        .is_none());
    // Ending every session of a user (deactivation, password change).
    let again = try_login(&env, &throttle, EMAIL, PASSWORD, "10.0.0.1")
        .await
        .unwrap();
    assert_eq!(
        sessions::end_sessions_of(&env.core, &again.session.user.id)
            .await
            .unwrap(),
        1
    );
    assert!(
        sessions::authenticate(&env.core, again.token.expose_secret())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn the_first_admin_link_works_once_and_only_while_nobody_exists() {
    let env = TestEnv::new(&[]).await;
    let link = FirstAdminLink::new();
    let token = link
        .arm_if_needed(&env.core)
        .await
        .unwrap()
        .expect("no staff yet: a link");
    let (token, expires_at) = token;
    assert_eq!(expires_at, env.core.now() + sessions::FIRST_ADMIN_LINK_TTL);
    let token = token.expose_secret().to_string();
    assert!(link.is_valid(&env.core, &token).await.unwrap());
    assert!(!link.is_valid(&env.core, "not-the-token").await.unwrap());

    let wrong = sessions::create_first_admin(
        &env.core,
        &link,
        "not-the-token",
        "boss@example.com",
        None,
        &secret(PASSWORD),
        None,
    )
    .await;
    assert!(matches!(wrong, Err(SetupError::LinkInvalid)));

    // A weak password is refused and the link stays usable.
    let weak = sessions::create_first_admin(
        &env.core,
        &link,
        &token,
        "boss@example.com",
        None,
        &secret("short"),
        None,
    )
    .await;
    assert!(matches!(weak, Err(SetupError::Account(_))));
    assert!(link.is_valid(&env.core, &token).await.unwrap());

    let admin = sessions::create_first_admin(
        &env.core,
        &link,
        &token,
        "boss@example.com",
        Some("Boss".into()),
        &secret(PASSWORD),
        Some("127.0.0.1"),
    )
    .await
    .unwrap();
    assert_eq!(admin.role, Role::Admin);
    assert!(!link.is_valid(&env.core, &token).await.unwrap(), "used up");
    let again = sessions::create_first_admin(
        &env.core,
        &link,
        &token,
        "second@example.com",
        None,
        &secret(PASSWORD),
        None,
    )
    .await;
    assert!(matches!(again, Err(SetupError::LinkInvalid)));
    // Someone exists now: no new link.
    assert!(link.arm_if_needed(&env.core).await.unwrap().is_none());
}

#[tokio::test]
async fn a_link_is_dead_once_an_account_exists_by_other_means() {
    let env = TestEnv::new(&[]).await;
    let link = FirstAdminLink::new();
    let (token, _) = link.arm_if_needed(&env.core).await.unwrap().unwrap();
    accounts::create_user(&env.core, EMAIL, None, Role::Admin, &secret(PASSWORD))
        .await
        .unwrap();
    let res = sessions::create_first_admin(
        &env.core,
        &link,
        token.expose_secret(),
        "boss@example.com",
        None,
        &secret(PASSWORD),
        None,
    )
    .await;
    assert!(matches!(res, Err(SetupError::LinkInvalid)));
}

#[tokio::test]
async fn a_revoked_api_key_authenticates_nothing() {
    let env = TestEnv::new(&[]).await;
    let key = accounts::create_api_key(
        &env.core,
        "n8n",
        "admin@example.com",
        &heimdall_domain::entities::api_key::Scopes::all(),
    )
    .await
    .unwrap();
    let presented = key.key.expose_secret().to_string();
    assert!(
        heimdall_domain::access::authz::authenticate_api_key(&env.core, &presented)
            .await
            .unwrap()
            .is_some_and(|c| c.scopes == heimdall_domain::entities::api_key::Scopes::all())
    );
    sessions::revoke_api_key(&env.core, &key.id, "admin@example.com", None)
        .await
        .unwrap();
    assert!(
        heimdall_domain::access::authz::authenticate_api_key(&env.core, &presented)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        sessions::revoke_api_key(&env.core, &key.id, "admin@example.com", None).await,
        Err(sessions::RevokeKeyError::AlreadyRevoked)
    ));
    assert!(matches!(
        sessions::revoke_api_key(&env.core, "missing", "admin@example.com", None).await,
        Err(sessions::RevokeKeyError::NotFound(_))
    ));
}

/// Security finding 4: an address that failed too often is refused before
/// any password is checked (argon2 is not free to call), and no more than a
/// few verifications run at once; beyond that the answer is "busy" (429),
/// not a queue of 19 MiB hashes.
#[tokio::test]
async fn a_throttled_address_costs_no_password_check() {
    let env = env_with_user().await;
    let throttle = LoginThrottle::new();
    for i in 0..MAX_ADDRESS_FAILURES {
        let email = format!("guess{i}@example.com");
        let _ = try_login(&env, &throttle, &email, PASSWORD, "192.0.2.9").await;
    }
    let before = throttle.verifications();
    for _ in 0..50 {
        assert!(matches!(
            try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.9").await,
            Err(LoginError::Throttled)
        ));
    }
    assert_eq!(
        throttle.verifications(),
        before,
        "no argon2 for a throttled address"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ins_beyond_the_bound_are_busy_not_queued() {
    let env = env_with_user().await;
    let throttle = std::sync::Arc::new(LoginThrottle::with_verifications(2));
    let attempts = (0..24).map(|i| {
        let throttle = throttle.clone();
        let env = &env;
        async move {
            try_login(
                env,
                &throttle,
                EMAIL,
                "wrong password here",
                &format!("203.0.113.{i}"),
            )
            .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let busy = results
        .iter()
        .filter(|r| matches!(r, Err(LoginError::Busy)))
        .count();
    let refused = results
        .iter()
        .filter(|r| matches!(r, Err(LoginError::Refused)))
        .count();
    assert_eq!(busy + refused, 24, "{results:?}");
    assert!(busy > 0, "24 at once with room for 2: some are turned away");
    assert!(
        throttle.most_in_flight() <= 2,
        "{}",
        throttle.most_in_flight()
    );
    // The right password still works once the flood has passed.
    try_login(&env, &throttle, EMAIL, PASSWORD, "198.51.100.7")
        .await
        .expect("signs in");
}

/// Security finding 8: the first-admin link expires after 15 minutes; a
/// new one (from `heimdall user setup-link`, in another process) replaces
/// the old one.
#[tokio::test]
async fn the_first_admin_link_expires_and_a_new_one_replaces_it() {
    let env = TestEnv::new(&[]).await;
    let link = FirstAdminLink::new();
    let (old, _) = link.arm_if_needed(&env.core).await.unwrap().unwrap();
    env.clock
        .advance(sessions::FIRST_ADMIN_LINK_TTL + Duration::seconds(1));
    assert!(!link.is_valid(&env.core, old.expose_secret()).await.unwrap());
    let expired = sessions::create_first_admin(
        &env.core,
        &link,
        old.expose_secret(),
        "boss@example.com",
        None,
        &secret(PASSWORD),
        None,
    )
    .await;
    assert!(matches!(expired, Err(SetupError::LinkInvalid)));
    // Another process (the command line) makes a new one; the old one
    // stays dead, the new one works there and here.
    let other = FirstAdminLink::new();
    let (new, _) = other.arm_if_needed(&env.core).await.unwrap().unwrap();
    assert!(!link.is_valid(&env.core, old.expose_secret()).await.unwrap());
    assert!(link.is_valid(&env.core, new.expose_secret()).await.unwrap());
    sessions::create_first_admin(
        &env.core,
        &link,
        new.expose_secret(),
        "boss@example.com",
        None,
        &secret(PASSWORD),
        None,
    )
    .await
    .unwrap();
}

/// Security finding 6: an admin deactivates a staff member, changes a role
/// or resets a password; the person's sessions end at once; at least one
/// active admin remains; only admins may; every change is recorded.
#[tokio::test]
async fn staff_lifecycle_ends_sessions_and_keeps_an_admin() {
    use heimdall_domain::access::accounts::{AccountError, StaffChange};
    let env = env_with_user().await;
    let admin = accounts::create_user(
        &env.core,
        "admin@example.com",
        None,
        Role::Admin,
        &secret(PASSWORD),
    )
    .await
    .unwrap();
    let throttle = LoginThrottle::new();
    let session = try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.1")
        .await
        .unwrap();
    let token = session.token.expose_secret().to_string();
    assert!(sessions::authenticate(&env.core, &token)
        .await
        .unwrap()
        .is_some());
    // Not an admin: refused.
    let operator = accounts::list_users(&env.core)
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.email == EMAIL)
        .unwrap();
    assert!(matches!(
        accounts::change_staff(
            &env.core,
            Some(&operator),
            "admin@example.com",
            StaffChange::Deactivate
        )
        .await,
        Err(AccountError::NotAdmin)
    ));
    // Deactivated: the session ends at once and signing in is refused.
    accounts::change_staff(&env.core, Some(&admin), EMAIL, StaffChange::Deactivate)
        .await
        .unwrap();
    assert!(sessions::authenticate(&env.core, &token)
        .await
        .unwrap()
        .is_none());
    assert!(try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.1")
        .await
        .is_err());
    // Reactivated with a new role and a new password.
    accounts::change_staff(&env.core, Some(&admin), EMAIL, StaffChange::Reactivate)
        .await
        .unwrap();
    let u = accounts::change_staff(
        &env.core,
        Some(&admin),
        EMAIL,
        StaffChange::Role(Role::Approver),
    )
    .await
    .unwrap();
    assert_eq!(u.role, Role::Approver);
    assert!(matches!(
        accounts::change_staff(
            &env.core,
            Some(&admin),
            EMAIL,
            StaffChange::Password(secret("short"))
        )
        .await,
        Err(AccountError::WeakPassword)
    ));
    let s2 = try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.1")
        .await
        .unwrap();
    accounts::change_staff(
        &env.core,
        Some(&admin),
        EMAIL,
        StaffChange::Password(secret("a brand new password")),
    )
    .await
    .unwrap();
    assert!(sessions::authenticate(&env.core, s2.token.expose_secret())
        .await
        .unwrap()
        .is_none());
    assert!(try_login(&env, &throttle, EMAIL, PASSWORD, "192.0.2.1")
        .await
        .is_err());
    try_login(&env, &throttle, EMAIL, "a brand new password", "192.0.2.1")
        .await
        .unwrap();
    // The last active admin cannot be removed or demoted, even by the CLI.
    for change in [StaffChange::Deactivate, StaffChange::Role(Role::Operator)] {
        assert!(matches!(
            accounts::change_staff(&env.core, None, "admin@example.com", change).await,
            Err(AccountError::LastAdmin)
        ));
    }
    // With a second admin, the first may go.
    accounts::change_staff(&env.core, None, EMAIL, StaffChange::Role(Role::Admin))
        .await
        .unwrap();
    accounts::change_staff(
        &env.core,
        None,
        "admin@example.com",
        StaffChange::Deactivate,
    )
    .await
    .unwrap();
    let recorded = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.is_in([
            "staff_deactivated",
            "staff_reactivated",
            "staff_role_changed",
            "staff_password_reset",
        ]))
        .count(&env.core.db.conn)
        .await
        .unwrap();
    // Six changes made (the refused ones are not changes).
    assert_eq!(recorded, 6);
}
