"""Every object is addressed by its UUID; media lives under /media/ only behind a view."""

from django.urls import path

from . import views

urlpatterns = [
    path("", views.project_list, name="project-list"),
    path("projects/new/", views.project_create, name="project-create"),
    path("projects/<uuid:uuid>/", views.project_detail, name="project-detail"),
    path("projects/<uuid:uuid>/poll/", views.project_poll, name="project-poll"),
    path("projects/<uuid:uuid>/gallery/", views.project_gallery, name="project-gallery"),
    path("projects/<uuid:uuid>/members/", views.project_members, name="project-members"),
    path("projects/<uuid:uuid>/settings/", views.project_settings, name="project-settings"),
    path("projects/<uuid:uuid>/archive/", views.project_archive, name="project-archive"),
    path("projects/<uuid:uuid>/duplicate/", views.project_duplicate, name="project-duplicate"),
    path("projects/<uuid:uuid>/delete/", views.project_delete, name="project-delete"),
    path("projects/<uuid:uuid>/spend/", views.project_spend, name="project-spend"),
    path("projects/<uuid:uuid>/spend.csv", views.project_spend_csv, name="project-spend-csv"),
    path("projects/<uuid:uuid>/audit/", views.project_audit, name="project-audit"),
    path("projects/<uuid:uuid>/invites/", views.project_invites, name="project-invites"),
    path("invites/<uuid:uuid>/revoke/", views.invite_revoke, name="invite-revoke"),
    path("join/<str:token>/", views.invite_accept, name="invite-accept"),
    path("projects/<uuid:uuid>/generate/", views.project_generate_all, name="project-generate-all"),
    path("projects/<uuid:uuid>/film/", views.project_film, name="project-film"),
    path("projects/<uuid:uuid>/film/card/", views.project_film_card, name="project-film-card"),
    path(
        "projects/<uuid:uuid>/film/render/", views.project_film_render, name="project-film-render"
    ),
    path("projects/<uuid:uuid>/takes.zip", views.project_takes_zip, name="project-takes-zip"),
    path("projects/<uuid:uuid>/scenes/new/", views.scene_create, name="scene-create"),
    path("projects/<uuid:uuid>/scenes/order/", views.scene_order, name="scene-order"),
    path("scenes/<uuid:uuid>/edit/", views.scene_edit, name="scene-edit"),
    path("scenes/<uuid:uuid>/move/", views.scene_move, name="scene-move"),
    path("scenes/<uuid:uuid>/delete/", views.scene_delete, name="scene-delete"),
    path("scenes/<uuid:uuid>/clear-failed/", views.scene_clear_failed, name="scene-clear-failed"),
    path("scenes/<uuid:uuid>/compare/", views.scene_compare, name="scene-compare"),
    path("scenes/<uuid:uuid>/trim/", views.scene_trim, name="scene-trim"),
    path("scenes/<uuid:uuid>/generate/", views.scene_generate, name="scene-generate"),
    path("takes/<uuid:uuid>/retry/", views.take_retry, name="take-retry"),
    path("takes/<uuid:uuid>/cancel/", views.take_cancel, name="take-cancel"),
    path("takes/<uuid:uuid>/pick/", views.take_pick, name="take-pick"),
    path("takes/<uuid:uuid>/delete/", views.take_delete, name="take-delete"),
    path("takes/<uuid:uuid>/comments/", views.take_comment, name="take-comment"),
    path("takes/<uuid:uuid>/extend/", views.take_extend, name="take-extend"),
    path("takes/<uuid:uuid>/upscale/", views.take_upscale, name="take-upscale"),
    path("takes/<uuid:uuid>/last-frame/", views.take_last_frame, name="take-last-frame"),
    path("comments/<uuid:uuid>/delete/", views.comment_delete, name="comment-delete"),
    path("media/take/<uuid:uuid>/video", views.take_video, name="media-take-video"),
    path("media/take/<uuid:uuid>/poster", views.take_poster, name="media-take-poster"),
    path("media/film/<uuid:uuid>/video", views.film_video, name="media-film-video"),
    path("media/upscale/<uuid:uuid>/video", views.upscale_video, name="media-upscale-video"),
    path("media/image/<uuid:uuid>", views.image_file, name="media-image"),
]
