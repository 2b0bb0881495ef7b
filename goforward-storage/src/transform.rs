//! Image transformations (feature `image`): the parameters storage-js's
//! `transform` option sends, and the bounded decode → resize → encode.
//!
//! The decode is bounded before any pixel is allocated: the input's byte size
//! is checked against the object's metadata, and the image header's width and
//! height (and the decoder's total allocation) against [`Limits`], so a small
//! file that claims a huge canvas (a decompression bomb) is refused.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat, ImageReader};
use serde::Deserialize;

use crate::error::{Result, StorageError};

/// Largest output width or height (as Supabase Storage).
pub(crate) const MAX_OUTPUT_SIDE: u32 = 2500;
/// Decoder allocation cap, whatever the header says.
const MAX_DECODE_ALLOC: u64 = 256 << 20;

/// The server's transformation limits.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Largest object transformed, in bytes.
    pub max_input_bytes: u64,
    /// Largest input width or height, in pixels.
    pub max_input_side: u32,
    /// Transformations running at once.
    pub permits: tokio::sync::Semaphore,
}

/// Query parameters of `/render/image/…` (storage-js `TransformOptions`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct TransformQuery {
    width: Option<String>,
    height: Option<String>,
    resize: Option<String>,
    quality: Option<String>,
    format: Option<String>,
    /// Present: serve as an attachment.
    pub download: Option<String>,
}

/// How the image fills the requested box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resize {
    /// Fill the box, cropping the overflow (default).
    Cover,
    /// Fit inside the box, keeping the aspect ratio.
    Contain,
    /// Stretch to the box.
    Fill,
}

/// Validated transformation options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Transform {
    width: Option<u32>,
    height: Option<u32>,
    resize: Resize,
    quality: u8,
    format: Option<ImageFormat>,
}

fn bad(msg: String) -> StorageError {
    StorageError::InvalidRequest(msg)
}

fn side(name: &str, value: Option<&str>) -> Result<Option<u32>> {
    let Some(v) = value else { return Ok(None) };
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=MAX_OUTPUT_SIDE).contains(&n) => Ok(Some(n)),
        _ => Err(bad(format!(
            "{name} must be an integer from 1 to {MAX_OUTPUT_SIDE}"
        ))),
    }
}

/// The option names of a transformation.
const OPTIONS: [&str; 5] = ["width", "height", "resize", "quality", "format"];

impl TransformQuery {
    /// The options of a `transform` JSON object (as storage-js sends it to
    /// `createSignedUrl`): numbers or strings, nothing else.
    ///
    /// # Errors
    /// [`StorageError::InvalidRequest`] for another shape or an unknown option.
    pub(crate) fn from_json(value: &serde_json::Value) -> Result<Self> {
        let object = value
            .as_object()
            .ok_or_else(|| bad("transform must be an object".into()))?;
        let mut q = Self::default();
        for (key, v) in object {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::String(s) => s.clone(),
                _ => return Err(bad(format!("transform.{key} must be a number or a string"))),
            };
            let slot = match key.as_str() {
                "width" => &mut q.width,
                "height" => &mut q.height,
                "resize" => &mut q.resize,
                "quality" => &mut q.quality,
                "format" => &mut q.format,
                other => {
                    return Err(bad(format!(
                        "transform.{other}: expected one of {}",
                        OPTIONS.join(", ")
                    )));
                }
            };
            *slot = Some(text);
        }
        Ok(q)
    }

    /// The options as signed claims carry them.
    pub(crate) fn to_map(&self) -> std::collections::BTreeMap<String, String> {
        [
            ("width", &self.width),
            ("height", &self.height),
            ("resize", &self.resize),
            ("quality", &self.quality),
            ("format", &self.format),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.to_owned(), v)))
        .collect()
    }

    /// The options of signed claims (as written by [`TransformQuery::to_map`]).
    pub(crate) fn from_map(map: &std::collections::BTreeMap<String, String>) -> Self {
        let get = |k: &str| map.get(k).cloned();
        Self {
            width: get("width"),
            height: get("height"),
            resize: get("resize"),
            quality: get("quality"),
            format: get("format"),
            download: None,
        }
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`StorageError::InvalidRequest`] naming the bad parameter.
    pub(crate) fn parse(&self) -> Result<Transform> {
        let resize = match self.resize.as_deref().unwrap_or("cover") {
            "cover" => Resize::Cover,
            "contain" => Resize::Contain,
            "fill" => Resize::Fill,
            other => {
                return Err(bad(format!(
                    "resize {other:?}: expected cover, contain or fill"
                )));
            }
        };
        let quality = match self.quality.as_deref() {
            None => 80,
            Some(q) => match q.trim().parse::<u8>() {
                Ok(n) if (20..=100).contains(&n) => n,
                _ => return Err(bad("quality must be an integer from 20 to 100".into())),
            },
        };
        let format = match self.format.as_deref().unwrap_or("origin") {
            "origin" => None,
            "png" => Some(ImageFormat::Png),
            "jpeg" | "jpg" => Some(ImageFormat::Jpeg),
            "webp" => Some(ImageFormat::WebP),
            other => {
                return Err(bad(format!(
                    "format {other:?}: expected origin, png, jpeg or webp"
                )));
            }
        };
        Ok(Transform {
            width: side("width", self.width.as_deref())?,
            height: side("height", self.height.as_deref())?,
            resize,
            quality,
            format,
        })
    }
}

impl Transform {
    /// A short stable tag of the options (part of the ETag).
    pub(crate) fn tag(&self) -> String {
        let mode = match self.resize {
            Resize::Cover => "cover",
            Resize::Contain => "contain",
            Resize::Fill => "fill",
        };
        let format = self.format.map_or("origin", |f| f.extensions_str()[0]);
        format!(
            "{}x{}-{mode}-q{}-{format}",
            self.width.unwrap_or(0),
            self.height.unwrap_or(0),
            self.quality
        )
    }
}

/// The MIME types that can be transformed.
pub(crate) fn transformable(mimetype: &str) -> bool {
    matches!(
        mimetype,
        "image/png" | "image/jpeg" | "image/jpg" | "image/webp" | "image/gif"
    )
}

/// Decodes `input` within `max_side`, applies `t`, encodes; returns the
/// bytes and their MIME type. CPU-bound: run it off the async workers.
///
/// # Errors
/// [`StorageError::InvalidRequest`] for an undecodable image or one over the limits.
pub(crate) fn apply(input: &[u8], t: &Transform, max_side: u32) -> Result<(Vec<u8>, &'static str)> {
    let mut reader = ImageReader::new(Cursor::new(input))
        .with_guessed_format()
        .map_err(|_| bad("the object is not a decodable image".into()))?;
    let source = reader
        .format()
        .ok_or_else(|| bad("the object is not a decodable image".into()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(max_side);
    limits.max_image_height = Some(max_side);
    limits.max_alloc = Some(MAX_DECODE_ALLOC);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => bad(format!(
            "the image is too large to transform (at most {max_side}×{max_side} pixels)"
        )),
        _ => bad("the object is not a decodable image".into()),
    })?;
    let img = resize(img, t);
    let format = t.format.unwrap_or(source);
    let mut out = Cursor::new(Vec::new());
    let encoded = match format {
        ImageFormat::Jpeg => {
            let rgb = DynamicImage::ImageRgb8(img.to_rgb8());
            let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, t.quality);
            rgb.write_with_encoder(encoder)
        }
        ImageFormat::WebP => DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format),
        ImageFormat::Gif => DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format),
        _ => img.write_to(&mut out, ImageFormat::Png),
    };
    encoded.map_err(|e| StorageError::Internal(format!("image encoding failed: {e}")))?;
    let mime = match format {
        ImageFormat::Jpeg => "image/jpeg",
        ImageFormat::WebP => "image/webp",
        ImageFormat::Gif => "image/gif",
        _ => "image/png",
    };
    Ok((out.into_inner(), mime))
}

fn resize(img: DynamicImage, t: &Transform) -> DynamicImage {
    let (w0, h0) = (img.width().max(1), img.height().max(1));
    let scaled = |num: u32, den: u32, other: u32| -> u32 {
        let v = (u64::from(other) * u64::from(num) + u64::from(den) / 2) / u64::from(den);
        u32::try_from(v)
            .unwrap_or(MAX_OUTPUT_SIDE)
            .clamp(1, MAX_OUTPUT_SIDE)
    };
    let filter = FilterType::CatmullRom;
    match (t.width, t.height) {
        (None, None) => img,
        (Some(w), None) => img.resize_exact(w, scaled(w, w0, h0), filter),
        (None, Some(h)) => img.resize_exact(scaled(h, h0, w0), h, filter),
        (Some(w), Some(h)) => match t.resize {
            Resize::Cover => img.resize_to_fill(w, h, filter),
            Resize::Contain => img.resize(w, h, filter),
            Resize::Fill => img.resize_exact(w, h, filter),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> TransformQuery {
        let mut t = TransformQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "width" => t.width = v,
                "height" => t.height = v,
                "resize" => t.resize = v,
                "quality" => t.quality = v,
                "format" => t.format = v,
                _ => {}
            }
        }
        t
    }

    #[test]
    fn parameters_are_checked() {
        assert!(
            q(&[("width", "100"), ("resize", "contain")])
                .parse()
                .is_ok()
        );
        for bad in [
            ("width", "0"),
            ("width", "2501"),
            ("height", "-3"),
            ("width", "1e3"),
            ("resize", "stretch"),
            ("quality", "19"),
            ("quality", "101"),
            ("format", "bmp"),
        ] {
            assert!(q(&[bad]).parse().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn resizes_by_mode() {
        let img = DynamicImage::new_rgb8(400, 200);
        let size = |pairs: &[(&str, &str)]| {
            let t = q(pairs).parse().unwrap_or_else(|e| panic!("{e}"));
            let out = resize(img.clone(), &t);
            (out.width(), out.height())
        };
        assert_eq!(size(&[("width", "100"), ("height", "100")]), (100, 100));
        assert_eq!(
            size(&[("width", "100"), ("height", "100"), ("resize", "contain")]),
            (100, 50)
        );
        assert_eq!(
            size(&[("width", "100"), ("height", "100"), ("resize", "fill")]),
            (100, 100)
        );
        assert_eq!(size(&[("width", "50")]), (50, 25));
        assert_eq!(size(&[("height", "50")]), (100, 50));
        assert_eq!(size(&[]), (400, 200));
    }
}
