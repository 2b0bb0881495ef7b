//! HTTP handlers and the route table of `/storage/v1`.

mod buckets;
mod download;
mod list;
mod list_v2;
mod objects;
#[cfg(feature = "image")]
mod render;
mod sign;
mod versions;

use actix_web::web;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::entity::object;
use crate::error::Result;
use crate::names::{validate_bucket_id, validate_object_name};
use crate::state::{StorageState, ts};

/// The shared state as handlers extract it.
pub(crate) type State = web::Data<StorageState>;

/// `{bucket}/{name:.*}` path parameters.
#[derive(Debug, Deserialize)]
pub(crate) struct ObjectPath {
    bucket: String,
    name: String,
}

impl ObjectPath {
    /// The validated bucket id and the validated, NFC-normalised object name.
    fn validated(&self) -> Result<(String, String)> {
        validate_bucket_id(&self.bucket)?;
        let name = validate_object_name(&self.name)?;
        Ok((self.bucket.clone(), name))
    }
}

/// A full object row as remove / copy answer it.
pub(crate) fn object_json(row: &object::Model) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "bucket_id": row.bucket_id,
        "owner": row.owner,
        "owner_id": row.owner,
        "version": row.version,
        "metadata": row.metadata,
        "user_metadata": row.user_metadata,
        "created_at": ts(&row.created_at),
        "updated_at": ts(&row.updated_at),
        "last_accessed_at": ts(&row.last_accessed_at),
    })
}

async fn method_not_allowed() -> Result<actix_web::HttpResponse> {
    Err(crate::error::StorageError::MethodNotAllowed)
}

/// A resource whose unmatched methods answer 405 in the storage shape.
fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

/// Registers every route (specific paths before the `{bucket}/{name}` catch-alls).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    #[cfg(feature = "image")]
    cfg.service(
        resource("/render/image/authenticated/{bucket}/{name:.+}")
            .route(web::get().to(render::authenticated)),
    )
    .service(
        resource("/render/image/public/{bucket}/{name:.+}").route(web::get().to(render::public)),
    )
    .service(
        resource("/render/image/sign/{bucket}/{name:.+}").route(web::get().to(render::signed)),
    );
    let object = "/object/{bucket}/{name:.+}";
    cfg.service(
        resource("/bucket")
            .route(web::get().to(buckets::list))
            .route(web::post().to(buckets::create)),
    )
    .service(resource("/bucket/{id}/empty").route(web::post().to(buckets::empty)))
    .service(
        resource("/bucket/{id}")
            .route(web::get().to(buckets::get))
            .route(web::put().to(buckets::update))
            .route(web::delete().to(buckets::delete)),
    )
    .service(resource("/object/list/{bucket}").route(web::post().to(list::list)))
    .service(resource("/object/list-v2/{bucket}").route(web::post().to(list_v2::list_v2)))
    .service(resource("/object/move").route(web::post().to(objects::move_object)))
    .service(resource("/object/copy").route(web::post().to(objects::copy_object)))
    .service(resource("/object/sign/{bucket}").route(web::post().to(sign::sign_many)))
    .service(
        resource("/object/sign/{bucket}/{name:.+}")
            .route(web::post().to(sign::sign_one))
            .route(web::get().to(download::signed))
            .route(web::head().to(download::signed)),
    )
    .service(
        resource("/object/upload/sign/{bucket}/{name:.+}")
            .route(web::post().to(sign::create_upload_url))
            .route(web::put().to(sign::upload_with_token)),
    )
    .service(
        resource("/object/public/{bucket}/{name:.+}")
            .route(web::get().to(download::public))
            .route(web::head().to(download::public)),
    )
    .service(
        resource("/object/authenticated/{bucket}/{name:.+}")
            .route(web::get().to(download::authenticated))
            .route(web::head().to(download::authenticated)),
    )
    .service(
        resource("/object/info/public/{bucket}/{name:.+}")
            .route(web::get().to(objects::info_public)),
    )
    .service(
        resource("/object/info/authenticated/{bucket}/{name:.+}")
            .route(web::get().to(objects::info)),
    )
    .service(resource("/object/info/{bucket}/{name:.+}").route(web::get().to(objects::info)))
    .service(
        resource("/object/versions/{bucket}/{name:.+}")
            .route(web::get().to(versions::list))
            .route(web::post().to(versions::restore))
            .route(web::delete().to(versions::delete)),
    )
    .service(resource("/object/{bucket}").route(web::delete().to(objects::remove_many)))
    .service(
        resource(object)
            .route(web::post().to(objects::upload))
            .route(web::put().to(objects::update))
            .route(web::get().to(download::authenticated))
            .route(web::head().to(download::authenticated))
            .route(web::delete().to(objects::delete_one)),
    );
}
